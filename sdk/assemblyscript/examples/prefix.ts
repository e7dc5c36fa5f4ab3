// A filter module: keeps the records whose value starts with the "prefix"
// parameter (its bytes are encoded once, not per record).
import { Record, onFilter, param } from "../assembly/index";
export * from "../assembly/index";

let prefix: ArrayBuffer | null = null;

function keep(r: Record): bool {
  if (prefix == null) prefix = String.UTF8.encode(param("prefix"));
  const p = prefix!;
  const n = p.byteLength;
  if (r.valueLen < n) return false;
  return memory.compare(r.valuePtr, changetype<usize>(p), n) == 0;
}

onFilter(keep);
