// Package group is `weir group`: list, describe, delete consumer groups and
// reset their committed offsets over the Kafka admin APIs.
package group

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weir-dev/weir/internal/cli/clientcmd"
)

// New returns the group command and its verbs.
func New(p *clientcmd.Params) *cobra.Command {
	var format string
	return clientcmd.Noun(p, &format, &cobra.Command{
		Use:     "group",
		Aliases: []string{"groups"},
		Short:   "List, describe and delete consumer groups; reset their offsets",
	},
		NewList(p, &format),
		NewDescribe(p, &format),
		NewDelete(p, &format),
		NewResetOffsets(p, &format),
	)
}

// NotFoundError is what every verb reports for a group the broker does not
// know, whichever way the broker said so (GROUP_ID_NOT_FOUND, or a Dead
// group with nothing in it from DescribeGroups).
type NotFoundError struct{ Group string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("group %q does not exist", e.Group) }

func (e *NotFoundError) Unwrap() error { return kerr.GroupIDNotFound }

// ActiveError refuses a change that Kafka only allows while a group has no
// members.
type ActiveError struct {
	Group   string
	What    string // what was refused, e.g. "reset offsets of"
	State   string // "" if unknown
	Members int    // 0 if unknown
	// Code is the broker's refusal, nil when the command refused by itself.
	Code *kerr.Error
}

func (e *ActiveError) Error() string {
	var why string
	switch {
	case e.Members == 1:
		why = "it has 1 active member"
	case e.Members > 1:
		why = fmt.Sprintf("it has %d active members", e.Members)
	default:
		why = "it has active members"
	}
	if e.State != "" {
		why += " (state " + e.State + ")"
	}
	if e.Code != nil {
		return fmt.Sprintf("%s group %q: %s: %s; stop its consumers first", e.What, e.Group, e.Code.Message, why)
	}
	return fmt.Sprintf("cannot %s group %q: %s; stop its consumers first", e.What, e.Group, why)
}

// Unwrap is NON_EMPTY_GROUP, which is what the broker answers to deleting a
// group with members.
func (e *ActiveError) Unwrap() error {
	if e.Code != nil {
		return e.Code
	}
	return kerr.NonEmptyGroup
}

// groupErr turns a group-level Kafka error into one readable error.
func groupErr(group string, err error, message string) error {
	if errors.Is(err, kerr.GroupIDNotFound) {
		return &NotFoundError{Group: group}
	}
	return clientcmd.KafkaErr("", err, message)
}

// uniqueNames rejects a group named twice.
func uniqueNames(names []string) error {
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			return fmt.Errorf("group %q is given more than once", n)
		}
		seen[n] = true
	}
	return nil
}

// partitionList prints partitions as Kafka's tools take them: 0,1,2.
func partitionList(ps []int32) string {
	ps = slices.Clone(ps)
	slices.Sort(ps)
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprint(p)
	}
	return strings.Join(parts, ",")
}

// dash stands in for a missing value in text tables.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func optInt(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}
