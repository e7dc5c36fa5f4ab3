package produce

import (
	"fmt"
	"io"
	"time"
)

// summary is what a produce run achieved. Rates use the time from the first
// line read to the last acknowledgement; connecting is not counted.
type summary struct {
	Topic          string  `json:"topic"`
	Records        int64   `json:"records"`
	Bytes          int64   `json:"bytes"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	RecordsPerSec  float64 `json:"records_per_second"`
	MBPerSec       float64 `json:"mb_per_second"`
	// Set only with --transactional-id.
	TransactionalID string `json:"transactional_id,omitempty"`
	Transactions    *int64 `json:"transactions_committed,omitempty"`
}

func newSummary(topic string, records, bytes int64, elapsed time.Duration) summary {
	s := summary{Topic: topic, Records: records, Bytes: bytes, ElapsedSeconds: elapsed.Seconds()}
	if secs := elapsed.Seconds(); secs > 0 {
		s.RecordsPerSec = float64(records) / secs
		s.MBPerSec = float64(bytes) / 1e6 / secs
	}
	return s
}

func (s summary) withTransactions(id string, committed int64) summary {
	s.TransactionalID, s.Transactions = id, &committed
	return s
}

func (s summary) WriteText(w io.Writer) error {
	elapsed := time.Duration(s.ElapsedSeconds * float64(time.Second)).Round(time.Millisecond)
	noun := "records"
	if s.Records == 1 {
		noun = "record"
	}
	txns := ""
	if s.Transactions != nil {
		txns = "; " + plural(*s.Transactions, "transaction") + " committed"
	}
	_, err := fmt.Fprintf(w, "produced %d %s (%s) to %s in %s: %.0f records/s, %.2f MB/s%s\n",
		s.Records, noun, humanBytes(s.Bytes), s.Topic, elapsed, s.RecordsPerSec, s.MBPerSec, txns)
	return err
}

// humanBytes uses decimal units, matching the MB/s figure beside it.
func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.2f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
