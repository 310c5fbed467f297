// Copies the SDK's browser build (dist/esm, JavaScript only) to the gateway's live page
// (services/gateway/src/ytmaker_gateway/web/sdk/), which is committed so that the gateway
// serves its page without Node. `--check` fails when the committed copy is not the build.
import { cpSync, existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = resolve(fileURLToPath(import.meta.url), "../..");
const FROM = join(pkg, "dist/esm");
const TO = resolve(pkg, "../../services/gateway/src/ytmaker_gateway/web/sdk");

const scripts = (dir) =>
  existsSync(dir)
    ? readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith(".js")).map(String).sort()
    : [];

export function differences() {
  const built = scripts(FROM);
  const copied = scripts(TO);
  const out = [];
  for (const f of new Set([...built, ...copied])) {
    if (!built.includes(f)) out.push(`${f}: not in the build`);
    else if (!copied.includes(f)) out.push(`${f}: not copied`);
    else if (readFileSync(join(FROM, f), "utf8") !== readFileSync(join(TO, f), "utf8")) out.push(`${f}: differs`);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--check")) {
    const diff = differences();
    if (diff.length) {
      console.error(`${relative(process.cwd(), TO)} is not the SDK's build (npm run web):\n  ${diff.join("\n  ")}`);
      process.exit(1);
    }
  } else {
    rmSync(TO, { recursive: true, force: true });
    cpSync(FROM, TO, { recursive: true, filter: (src) => !src.endsWith(".d.ts") });
    console.error(`copied ${FROM} to ${TO}`);
  }
}
