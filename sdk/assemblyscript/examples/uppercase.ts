// A map module: each record's value with ASCII letters upper-cased.
import { Record, onMap } from "../assembly/index";
export * from "../assembly/index";

function shout(r: Record): Record {
  r.upperValueAscii();
  return r;
}

onMap(shout);
