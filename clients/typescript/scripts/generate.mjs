// Generates src/generated/contract.ts (types and type guards) from the gateway's exported JSON
// Schema, shared/schemas/gateway.schema.json (python -m ytmaker_gateway.schema).
//
//   node scripts/generate.mjs          rewrite the file
//   node scripts/generate.mjs --check  fail when the file is not what the schema says: the
//                                      build runs this, so a change of the contract fails it
//
// Covers the JSON Schema pydantic writes: $ref, const, enum, anyOf/oneOf, objects with
// properties / additionalProperties / propertyNames, arrays, and the scalar types. The guards
// check structure (types, required fields, literals); unknown fields are allowed (clients must
// ignore what they do not know), and range or pattern constraints are the server's business.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const SCHEMA = process.env.YTMAKER_SCHEMA || resolve(here, "../../../shared/schemas/gateway.schema.json");
const OUT = process.env.YTMAKER_CONTRACT_OUT || resolve(here, "../src/generated/contract.ts");

const refName = (ref) => {
  const m = /^#\/\$defs\/(.+)$/.exec(ref);
  if (!m) throw new Error(`unsupported $ref ${ref}`);
  return m[1];
};
const lit = (value) => JSON.stringify(value);
const key = (name) => (/^[A-Za-z_$][\w$]*$/.test(name) ? name : lit(name));

function typeOf(s) {
  if (s === true || s === undefined || s === null) return "unknown";
  if (s.$ref) return refName(s.$ref);
  if ("const" in s) return lit(s.const);
  if (s.enum) return s.enum.map(lit).join(" | ");
  const union = s.anyOf || s.oneOf;
  if (union) return union.map((u) => wrap(typeOf(u))).join(" | ");
  if (s.allOf && s.allOf.length === 1) return typeOf(s.allOf[0]);
  switch (s.type) {
    case "string": return "string";
    case "integer": case "number": return "number";
    case "boolean": return "boolean";
    case "null": return "null";
    case "array": return `${wrap(typeOf(s.items))}[]`;
    case "object": return objectType(s, "");
    case undefined: return "unknown";
    default: throw new Error(`unsupported type ${JSON.stringify(s.type)}`);
  }
}

const wrap = (t) => (/[|&]/.test(t) ? `(${t})` : t);

function objectType(s, indent) {
  if (s.properties) {
    const required = new Set(s.required || []);
    const lines = Object.entries(s.properties).map(([name, p]) => {
      const doc = p.description ? `${indent}  /** ${p.description.replace(/\*\//g, "* /")} */\n` : "";
      return `${doc}${indent}  ${key(name)}${required.has(name) ? "" : "?"}: ${typeOf(p)};`;
    });
    return `{\n${lines.join("\n")}\n${indent}}`;
  }
  const value = typeof s.additionalProperties === "object" ? typeOf(s.additionalProperties) : "unknown";
  if (s.propertyNames) return `Partial<Record<${typeOf(s.propertyNames)}, ${value}>>`;
  return `{ [key: string]: ${value} }`;
}

// A boolean JavaScript expression that is true when `v` matches `s`.
function check(s, v) {
  if (s === true || s === undefined || s === null) return "true";
  if (s.$ref) return `is${refName(s.$ref)}(${v})`;
  if ("const" in s) return `${v} === ${lit(s.const)}`;
  if (s.enum) return `[${s.enum.map(lit).join(", ")}].includes(${v} as never)`;
  const union = s.anyOf || s.oneOf;
  if (union) return `(${union.map((u) => check(u, v)).join(" || ")})`;
  if (s.allOf && s.allOf.length === 1) return check(s.allOf[0], v);
  switch (s.type) {
    case "string": return `typeof ${v} === "string"`;
    case "integer": return `Number.isInteger(${v})`;
    case "number": return `typeof ${v} === "number"`;
    case "boolean": return `typeof ${v} === "boolean"`;
    case "null": return `${v} === null`;
    case "array": return `(Array.isArray(${v}) && ${v}.every((x: unknown) => ${check(s.items, "x")}))`;
    case "object": return objectCheck(s, v);
    case undefined: return "true";
    default: throw new Error(`unsupported type ${JSON.stringify(s.type)}`);
  }
}

function objectCheck(s, v) {
  const parts = [`isRecord(${v})`];
  if (s.properties) {
    const required = new Set(s.required || []);
    for (const [name, p] of Object.entries(s.properties)) {
      const at = `${v}[${lit(name)}]`;
      parts.push(required.has(name) ? check(p, at) : `(${at} === undefined || ${check(p, at)})`);
    }
  } else if (typeof s.additionalProperties === "object" || s.propertyNames) {
    const k = s.propertyNames ? check(s.propertyNames, "k") : "true";
    const x = typeof s.additionalProperties === "object" ? check(s.additionalProperties, "x") : "true";
    parts.push(`Object.entries(${v}).every(([k, x]) => ${k} && ${x})`);
  }
  return `(${parts.join(" && ")})`;
}

function declaration(name, s) {
  const doc = s.description ? `/** ${s.description.replace(/\*\//g, "* /").replace(/\n+/g, " ")} */\n` : "";
  const body = s.type === "object" && s.properties && !s.anyOf && !s.oneOf
    ? `export interface ${name} ${objectType(s, "")}`
    : `export type ${name} = ${typeOf(s)};`;
  const guard =
    `/** Whether \`v\` has the shape of ${name} (generated from the schema). */\n` +
    `export function is${name}(v: unknown): v is ${name} {\n  return ${check(s, "v")};\n}`;
  return `${doc}${body}\n\n${guard}\n`;
}

export function generate(schema) {
  const defs = schema.$defs || {};
  const out = [
    "// Generated by scripts/generate.mjs from shared/schemas/gateway.schema.json: do not edit.",
    "// The build fails when this file is not what the schema says (npm run generate).",
    "/* eslint-disable */",
    "",
    "function isRecord(v: unknown): v is Record<string, unknown> {",
    '  return typeof v === "object" && v !== null && !Array.isArray(v);',
    "}",
    "",
  ];
  for (const name of Object.keys(defs).sort()) out.push(declaration(name, defs[name]));
  for (const [name, s] of Object.entries(schema.properties || {})) {
    if (s.$ref && refName(s.$ref) === name) continue; // already a $def of that name
    out.push(declaration(name, s));
  }
  return out.join("\n");
}

function main() {
  const text = generate(JSON.parse(readFileSync(SCHEMA, "utf8")));
  if (process.argv.includes("--check")) {
    let current = "";
    try { current = readFileSync(OUT, "utf8"); } catch { /* missing: stale */ }
    if (current !== text) {
      console.error(
        "src/generated/contract.ts is not what shared/schemas/gateway.schema.json says: the " +
        "gateway's contract changed. Run `npm run generate` and fix what no longer compiles.",
      );
      process.exit(1);
    }
  } else {
    writeFileSync(OUT, text);
    console.error(`wrote ${OUT}`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main();
