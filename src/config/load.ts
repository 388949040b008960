import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { configSchema, configShape, type Config } from './schema.js';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** A loaded config with its paths resolved against the config file's folder. */
export interface LoadedConfig {
  file: string;
  config: Config;
  /** Absolute data directory. */
  dataDir: string;
}

export const DEFAULT_CONFIG_FILE = 'config/config.json';

/**
 * `SCANNODE_<SECTION>_<KEY>=value` overrides `<section>.<key>`; `SCANNODE_DATADIR` overrides `dataDir`.
 * Keys are matched case-insensitively against the schema, so `SCANNODE_DICOM_AETITLE` finds `dicom.aeTitle`.
 * Values are parsed as JSON when they parse (numbers, booleans, arrays), else taken as strings.
 */
export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const shape = configShape as Record<string, z.ZodType>;
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('SCANNODE_') || name === 'SCANNODE_CONFIG' || value === undefined) continue;
    const parts = name.slice('SCANNODE_'.length).toLowerCase().split('_');
    const section = Object.keys(shape).find((k) => k.toLowerCase() === parts[0]);
    if (!section) {
      problems.push(`${name}: no config section "${parts[0]}"`);
      continue;
    }
    const parsed = parseEnvValue(value);
    if (parts.length === 1) {
      raw[section] = parsed;
      continue;
    }
    const keyName = parts.slice(1).join('');
    const sectionValue = (raw[section] ?? {}) as Record<string, unknown>;
    if (typeof sectionValue !== 'object' || Array.isArray(sectionValue)) {
      problems.push(`${name}: "${section}" is not an object`);
      continue;
    }
    const known = sectionKeys(shape[section]!);
    const key = known.find((k) => k.toLowerCase() === keyName) ?? keyName;
    if (!known.includes(key)) {
      problems.push(`${name}: "${section}" has no key "${keyName}" (known: ${known.join(', ')})`);
      continue;
    }
    // A value that parses as JSON of another type ("12345678901234567890", "true") stays text where the key is text.
    const field = fieldSchemas(shape[section]!, key);
    const value_ =
      typeof parsed !== 'string' &&
      field.length > 0 &&
      !field.some((f) => f.safeParse(parsed).success) &&
      field.some((f) => f.safeParse(value).success)
        ? value
        : parsed;
    raw[section] = { ...sectionValue, [key]: value_ };
  }
  return problems;
}

/** The schemas a section gives `key` (several when the section is a union of objects). */
function fieldSchemas(schema: z.ZodType, key: string): z.ZodType[] {
  const out: z.ZodType[] = [];
  const visit = (s: unknown): void => {
    const def = (s as { _zod?: { def?: Record<string, unknown> } } | undefined)?._zod?.def;
    if (!def) return;
    if (def.type === 'object') {
      const f = (def.shape as Record<string, z.ZodType>)[key];
      if (f) out.push(f);
    }
    for (const inner of [def.innerType, def.in, ...((def.options as unknown[]) ?? [])]) visit(inner);
  };
  visit(schema);
  return out;
}

function parseEnvValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function sectionKeys(schema: z.ZodType): string[] {
  const keys = new Set<string>();
  const visit = (s: unknown): void => {
    const def = (s as { _zod?: { def?: Record<string, unknown> } } | undefined)?._zod?.def;
    if (!def) return;
    if (def.type === 'object') Object.keys(def.shape as object).forEach((k) => keys.add(k));
    for (const inner of [def.innerType, def.in, ...((def.options as unknown[]) ?? [])]) visit(inner);
  };
  visit(schema);
  return [...keys];
}

export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const where = issue.path.length ? issue.path.join('.') : '(root)';
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => `${where === '(root)' ? k : `${where}.${k}`}: unknown key`).join('\n  - ');
    }
    return `${where}: ${issue.message}`;
  });
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(abs, [`cannot read the file: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(abs, [`not valid JSON: ${(err as Error).message}`]);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(abs, ['(root): expected a JSON object']);
  }
  const envProblems = applyEnvOverrides(raw as Record<string, unknown>, env);
  const result = configSchema.safeParse(raw);
  const problems = [...envProblems, ...(result.success ? [] : formatIssues(result.error))];
  if (problems.length > 0 || !result.success) throw new ConfigError(abs, problems);
  const config = result.data;
  const base = path.dirname(abs);
  const dataDir = path.resolve(base, config.dataDir);
  if (config.log.file) config.log.file = path.resolve(base, config.log.file);
  const remoteTls = Object.values(config.remotes).map((r) => r.tls);
  for (const files of [config.dicom.tls, config.scanner.tls, ...remoteTls]) {
    if (!files) continue;
    for (const key of ['cert', 'key', 'ca'] as const) if (files[key]) files[key] = path.resolve(base, files[key]);
  }
  return { file: abs, config, dataDir };
}
