// A filter module: keeps the records whose value contains the "text"
// parameter.
import { Record, onFilter, param } from "../assembly/index";
export * from "../assembly/index";

function keep(r: Record): bool {
  return r.valueContains(param("text"));
}

onFilter(keep);
