// Builds every example in examples/ into build/NAME.wasm with the
// AssemblyScript compiler. The ABI needs no imports besides Weir's own, so
// aborts trap instead of calling an "env.abort" import.
import { readdirSync, mkdirSync } from "node:fs";
import { execFileSync } from "node:child_process";

mkdirSync("build", { recursive: true });
for (const f of readdirSync("examples").filter((f) => f.endsWith(".ts"))) {
  const name = f.slice(0, -3);
  execFileSync("npx", ["asc", `examples/${f}`, "-o", `build/${name}.wasm`, "-O3", "--noAssert",
    "--runtime", "incremental", "--use", "abort=", "--exportRuntime"], { stdio: "inherit" });
  console.log(`built build/${name}.wasm`);
}
