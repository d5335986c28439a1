#!/usr/bin/env node
// Checks the rendered Kubernetes manifests of deploy/k8s (tests/deploy/k8s_manifests_test.sh
// renders them with `kubectl kustomize`), offline:
//  1. Schema: every object against the Kubernetes OpenAPI schema bundled in kubernetes-models
//     (ajv: types, required fields, enums, formats), and, since those schemas accept unknown
//     fields, strictly through TypeScript: each object as a literal of its kubernetes-models
//     interface, where a misspelled or misplaced field is an excess-property error.
//  2. Semantics the schema cannot see (see `checkVariant`): resources, probes that a paused server
//     survives, references between objects, the server config against the pod spec, the replicas'
//     advertised names (--replica.advertise) and their Services, the HPA and its
//     prometheus-adapter rule, the GPU overlay and the Indexed training Job.
//
// Usage: node check_manifests.js --case NAME=DIR [--case NAME=DIR --expect NAME=TEXT ...]
//            [--metrics server/metrics.cc] [--dockerfile Dockerfile]
//            [--dockerfile-gpu Dockerfile.cuda] [--server LINVIDEO_SERVER] [--promtool PROMTOOL]
// Each case DIR holds the rendered base.yaml, cpu.yaml and gpu.yaml and the prometheus-adapter
// values as adapter.yaml. A case without --expect must pass; a case with --expect NAME=TEXT must
// fail with a problem line containing TEXT (tests/deploy/k8s_manifests_test.sh breaks copies of
// the manifests that way). All cases are checked in one process, with one TypeScript program.
// The Dockerfiles tell which model folders the CPU and the CUDA image bake in; the server binary
// parses and validates each server.json with the pod's own flags (`serverAcceptsCommand`);
// promtool parses the adapter rule's queries (its template filled in as prometheus-adapter fills
// it) as PromQL. Prints what did not go as expected; exit 1 if any.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { execFileSync } = require("child_process");
const YAML = require("yaml");
const ts = require("typescript");

const VARIANTS = ["base", "cpu", "gpu"];
// The health names linvideo-server registers (server/main.cc, set_serving): Admin.Pause and drain
// set "" and linvideo.v1.Generation to NOT_SERVING (readiness), and leave linvideo.v1.Liveness
// SERVING while the server answers at all. A gRPC liveness probe must check the latter: on one of
// the former it would kill a paused or draining server, on an unregistered name (NOT_FOUND) every
// server.
const HEALTH_NAMES_PAUSE_CLEARS = ["", "linvideo.v1.Generation"];
const LIVENESS_HEALTH_NAME = "linvideo.v1.Liveness";
const SERVER_COMPONENT = "server";
// --replica.advertise: HOST is at most 30 characters of [A-Za-z0-9.-] (server/replica_router.cc
// ParseAdvertise: "HOST_65535" must fit the 36-character id suffix, so ids stay within 64).
const MAX_ADVERTISE_HOST = 30;
const ADVERTISE_FLAG = "--replica.advertise=";

function parseArgs(argv) {
  const out = { case: [], expect: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (i + 1 >= argv.length) throw new Error(`--${key} needs a value`);
    if (Array.isArray(out[key])) out[key].push(argv[i + 1]);
    else out[key] = argv[i + 1];
  }
  if (out.case.length === 0) throw new Error("--case NAME=DIR is required");
  const pair = (s) => [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)];
  out.cases = out.case.map(pair);
  out.expected = new Map(out.expect.map(pair));
  return out;
}

// Problems by case; `current` is the case being checked.
const problems = new Map();
let current = "";
function problem(where, message, caseName = current) {
  if (!problems.has(caseName)) problems.set(caseName, []);
  problems.get(caseName).push(`${where}: ${message}`);
}

function id(obj) {
  return `${obj.kind}/${obj.metadata && obj.metadata.name}`;
}

function loadRendered(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"), { uniqueKeys: true });
  const objects = [];
  for (const doc of docs) {
    if (doc.errors.length) {
      problem(file, doc.errors.map((e) => e.message).join("; "));
      continue;
    }
    const obj = doc.toJS();
    if (obj !== null && obj !== undefined) objects.push(obj);
  }
  return objects;
}

// kubernetes-models module of an apiVersion/kind: apps/v1 StatefulSet ->
// kubernetes-models/apps/v1/StatefulSet, v1 Service -> kubernetes-models/v1/Service.
function modelModule(obj) {
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") return null;
  const parts = obj.apiVersion.split("/");
  const dir = parts.length === 1 ? parts[0] : `${parts[0]}/${parts[1]}`;
  return `kubernetes-models/${dir}/${obj.kind}`;
}

function resolveModel(obj) {
  const mod = modelModule(obj);
  if (mod === null) return null;
  try {
    return { mod, file: require.resolve(mod), Model: require(mod)[obj.kind] };
  } catch (e) {
    return null;
  }
}

// 1a. ajv validation of each object.
function schemaCheck(variant, objects) {
  for (const obj of objects) {
    const where = `${variant}: ${id(obj)}`;
    const m = resolveModel(obj);
    if (m === null || typeof m.Model !== "function") {
      problem(where, `no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
      continue;
    }
    try {
      new m.Model(obj).validate();
    } catch (e) {
      problem(where, `schema: ${e.message}`);
    }
  }
}

// 1b. Unknown fields, through TypeScript's excess-property check on object literals. One program
// for every variant (tsc starts once).
function strictFieldCheck(all) {
  const lines = [];
  const spans = [];  // [firstLine, lastLine, where, case]
  let n = 0;
  for (const [caseName, variant, objects] of all) {
    for (const obj of objects) {
      const m = resolveModel(obj);
      if (m === null) continue;  // reported by schemaCheck
      const iface = `I${obj.kind}`;
      const alias = `T${n}`;
      lines.push(`import type { ${iface} as ${alias} } from ${JSON.stringify(m.mod)};`);
      const body = `export const o${n}: ${alias} = ${JSON.stringify(obj, null, 1)};`.split("\n");
      spans.push([lines.length, lines.length + body.length - 1, `${variant}: ${id(obj)}`, caseName]);
      lines.push(...body);
      n++;
    }
  }
  const fileName = path.join(__dirname, "__rendered_manifests__.ts");
  const text = lines.join("\n");
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang, ...rest) =>
    path.resolve(f) === fileName
      ? ts.createSourceFile(f, text, lang, true)
      : getSourceFile(f, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (f) => path.resolve(f) === fileName || fileExists(f);
  const program = ts.createProgram([fileName], options, host);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
    if (!d.file || path.resolve(d.file.fileName) !== fileName) {
      for (const [caseName] of all) problem("typescript", message, caseName);
      continue;
    }
    const line = d.file.getLineAndCharacterOfPosition(d.start).line;
    const span = spans.find(([a, b]) => line >= a && line <= b);
    const field = lines[line].trim();
    problem(span[2], `unknown or mistyped field at \`${field}\`: ${message}`, span[3]);
  }
}

// --- helpers for the semantic checks ---

function podSpecOf(obj) {
  if (["Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"].includes(obj.kind)) {
    return obj.spec && obj.spec.template && obj.spec.template.spec;
  }
  return null;
}

function podLabelsOf(obj) {
  return (obj.spec && obj.spec.template && obj.spec.template.metadata &&
          obj.spec.template.metadata.labels) || {};
}

function selects(selector, labels) {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function allContainers(spec) {
  return [...(spec.initContainers || []), ...(spec.containers || [])];
}

function port(listen) {
  const m = /:(\d+)$/.exec(listen || "");
  return m ? Number(m[1]) : null;
}

// Whether `file` lies under a mount of `container` (returns the mount).
function mountFor(container, file) {
  let best = null;
  for (const m of container.volumeMounts || []) {
    const dir = m.mountPath.replace(/\/$/, "");
    if (file === dir || file.startsWith(dir + "/")) {
      if (best === null || dir.length > best.mountPath.length) best = m;
    }
  }
  return best;
}

function quantityNumber(q) {
  if (typeof q === "number") return q;
  const m = /^([0-9.]+)(m?)$/.exec(String(q));
  if (!m) return NaN;
  return m[2] === "m" ? Number(m[1]) / 1000 : Number(m[1]);
}

// A liveness probe a paused or draining server passes: a gRPC probe only on linvideo.v1.Liveness;
// an exec of `linvideo health` only if it asks for linvideo.v1.Liveness or takes NOT_SERVING as
// alive; a TCP or HTTP probe (the port stays open while paused).
function probeIsPausedSafe(probe) {
  if (!probe) return false;
  if (probe.grpc) return (probe.grpc.service || "") === LIVENESS_HEALTH_NAME;
  if (probe.exec) {
    const cmd = (probe.exec.command || []).join(" ");
    if (!/\bhealth\b/.test(cmd)) return true;
    const service = /--service[= ](\S*)/.exec(cmd);
    return (service !== null && service[1] === LIVENESS_HEALTH_NAME) || /NOT_SERVING/.test(cmd);
  }
  return Boolean(probe.tcpSocket || probe.httpGet);
}

function serverConfigOf(objects, spec, where) {
  const vol = (spec.volumes || []).find((v) => v.configMap);
  if (!vol) {
    problem(where, "mounts no ConfigMap with the server config");
    return null;
  }
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === vol.configMap.name);
  if (!cm || !cm.data || !cm.data["server.json"]) {
    problem(where, `ConfigMap ${vol.configMap.name} has no server.json`);
    return null;
  }
  try {
    return { json: JSON.parse(cm.data["server.json"]), text: cm.data["server.json"], volume: vol };
  } catch (e) {
    problem(where, `server.json is not JSON: ${e.message}`);
    return null;
  }
}

// The server accepts the pod's command line, file and flags: `linvideo-server` parses them and
// runs ServerConfig::Validate() (unknown options, malformed values, ranges, the replica.advertise
// rules) as the pod would, with --config pointing at a copy of server.json and every $(VAR)
// expanded (the pod name as the highest ordinal's). An extra --auth.admin_token_file names a file
// that does not exist, so a valid configuration stops right after Validate(), at reading the token
// (exit 2, "auth.admin_token_file: ..."), before any model is loaded, file written or port opened;
// anything else is the server's complaint.
const serverVerdicts = new Map();  // key -> the server's complaint ("" if none)
function serverAcceptsCommand(binary, text, flags, where) {
  const key = JSON.stringify([text, flags]);
  if (!serverVerdicts.has(key)) serverVerdicts.set(key, runServer(binary, text, flags));
  const complaint = serverVerdicts.get(key);
  if (complaint) problem(where, `linvideo-server rejects the pod's config and flags: ${complaint}`);
}

function runServer(binary, text, flags) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "linvideo-config-"));
  const file = path.join(dir, "server.json");
  const absent = path.join(dir, "absent-admin-token");
  fs.writeFileSync(file, text);
  const argv = [`--config=${file}`, ...flags, `--auth.admin_token_file=${absent}`];
  try {
    execFileSync(binary, argv, { cwd: dir, stdio: ["ignore", "ignore", "pipe"], timeout: 60000,
                                 killSignal: "SIGKILL" });
    return "exited 0 instead of stopping at the absent token file";
  } catch (e) {
    const err = String(e.stderr || "").trim();
    if (e.status === 2 && err.includes(`auth.admin_token_file: opening ${absent}`)) return "";
    return (err || String(e.message)).split(file).join("server.json")
        .replace(/^linvideo-server: /, "");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function adapterRules(file) {
  const values = YAML.parse(fs.readFileSync(file, "utf8"), { uniqueKeys: true });
  const rules = (values && values.rules && values.rules.custom) || [];
  if (!Array.isArray(rules) || rules.length === 0) {
    problem(file, "rules.custom holds no rule");
    return [];
  }
  return rules;
}

// The folders the image's Dockerfile copies in (COPY [--from=...] SRC... DEST).
function imageDirs(file) {
  const dirs = new Set();
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const m = /^\s*COPY\s+(?:--\S+\s+)*(.+)$/.exec(line);
    if (m) dirs.add(m[1].trim().split(/\s+/).pop().replace(/\/$/, ""));
  }
  return dirs;
}

// The adapter's queries as PromQL: each rule's seriesQuery, and its metricsQuery with the
// template filled in as prometheus-adapter does for a pods query, through `promtool check rules`.
const checkedPromql = new Map();  // the queries' text -> promtool's complaint ("" if none)
function promqlCheck(promtool, rules) {
  const exprs = [];
  for (const r of rules) {
    exprs.push(String(r.seriesQuery || ""));
    exprs.push(String(r.metricsQuery || "")
        .replace(/<<\.Series>>/g, seriesMetric(r) || "missing_series")
        .replace(/<<\.LabelMatchers>>/g, 'namespace="default",pod=~"linvideo-server-0|linvideo-server-1"')
        .replace(/<<\.GroupBy>>/g, "pod"));
  }
  const key = JSON.stringify(exprs);
  if (!checkedPromql.has(key)) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "linvideo-promql-"));
    const file = path.join(dir, "adapter-queries.yml");
    fs.writeFileSync(file, YAML.stringify({ groups: [{ name: "prometheus_adapter_queries",
      rules: exprs.map((expr, i) => ({ record: `adapter_query_${i}`, expr })) }] }));
    let complaint = "";
    try {
      execFileSync(promtool, ["check", "rules", file], { stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      complaint = `${String(e.stdout || "")}${String(e.stderr || e.message)}`.trim()
          .split("\n").filter((l) => /error|fail/i.test(l)).join(" ") || String(e.message);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    checkedPromql.set(key, complaint);
  }
  return checkedPromql.get(key);
}

function exportedMetrics(file) {
  const names = new Set();
  for (const m of fs.readFileSync(file, "utf8").matchAll(/\.Name\("([a-z_:][a-z0-9_:]*)"\)/g)) {
    names.add(m[1]);
  }
  return names;
}

// --- the semantic checks of one rendered variant ---

function checkVariant(variant, objects, ctx) {
  const byKind = (k) => objects.filter((o) => o.kind === k);
  const named = (k, n) => objects.find((o) => o.kind === k && o.metadata.name === n);
  const workloads = objects.filter((o) => podSpecOf(o));
  const gpu = variant === "gpu";

  const servers = workloads.filter(
      (o) => o.kind !== "Job" &&
             podLabelsOf(o)["app.kubernetes.io/component"] === SERVER_COMPONENT);
  if (servers.length !== 1) {
    problem(variant, `expected one server workload (pod label app.kubernetes.io/component: ` +
                     `${SERVER_COMPONENT}), found ${servers.length}`);
  }

  for (const w of workloads) {
    const where = `${variant}: ${id(w)}`;
    const spec = podSpecOf(w);
    const volumeNames = new Set((spec.volumes || []).map((v) => v.name));
    for (const t of (w.spec.volumeClaimTemplates || [])) volumeNames.add(t.metadata.name);
    const sc = spec.securityContext || {};
    for (const c of allContainers(spec)) {
      const cw = `${where} container ${c.name}`;
      const r = c.resources || {};
      for (const kind of ["requests", "limits"]) {
        for (const res of ["cpu", "memory"]) {
          if (!r[kind] || r[kind][res] === undefined) problem(cw, `no resources.${kind}.${res}`);
        }
      }
      const gpus = ["requests", "limits"].map(
          (k) => quantityNumber((r[k] || {})["nvidia.com/gpu"] || 0));
      if (gpu && !(gpus[0] >= 1 && gpus[1] >= 1)) {
        problem(cw, "the gpu overlay must request and limit nvidia.com/gpu (>= 1)");
      }
      if (!gpu && (gpus[0] > 0 || gpus[1] > 0)) problem(cw, `${variant} must not ask for a GPU`);
      const csc = c.securityContext || {};
      if (!(csc.runAsNonRoot === true || (sc.runAsNonRoot === true && csc.runAsNonRoot !== false))) {
        problem(cw, "must run as non-root (securityContext.runAsNonRoot: true)");
      }
      if (csc.readOnlyRootFilesystem !== true) problem(cw, "readOnlyRootFilesystem must be true");
      if (csc.allowPrivilegeEscalation !== false) {
        problem(cw, "allowPrivilegeEscalation must be false");
      }
      for (const m of c.volumeMounts || []) {
        if (!volumeNames.has(m.name)) problem(cw, `mounts volume ${m.name}, which is not defined`);
      }
      for (const e of c.env || []) {
        const ref = e.valueFrom || {};
        if (ref.secretKeyRef && !named("Secret", ref.secretKeyRef.name)) {
          problem(cw, `env ${e.name}: Secret ${ref.secretKeyRef.name} is not defined`);
        }
        if (ref.configMapKeyRef && !named("ConfigMap", ref.configMapKeyRef.name)) {
          problem(cw, `env ${e.name}: ConfigMap ${ref.configMapKeyRef.name} is not defined`);
        }
      }
      for (const e of c.envFrom || []) {
        if (e.secretRef && !named("Secret", e.secretRef.name)) {
          problem(cw, `envFrom: Secret ${e.secretRef.name} is not defined`);
        }
        if (e.configMapRef && !named("ConfigMap", e.configMapRef.name)) {
          problem(cw, `envFrom: ConfigMap ${e.configMapRef.name} is not defined`);
        }
      }
    }
    for (const v of spec.volumes || []) {
      if (v.persistentVolumeClaim && !named("PersistentVolumeClaim", v.persistentVolumeClaim.claimName)) {
        problem(where, `volume ${v.name}: PVC ${v.persistentVolumeClaim.claimName} is not defined`);
      }
      if (v.secret && !named("Secret", v.secret.secretName)) {
        problem(where, `volume ${v.name}: Secret ${v.secret.secretName} is not defined`);
      }
      if (v.configMap && !named("ConfigMap", v.configMap.name)) {
        problem(where, `volume ${v.name}: ConfigMap ${v.configMap.name} is not defined`);
      }
    }
    if (gpu) {
      const tolerates = (spec.tolerations || []).some((t) => t.key === "nvidia.com/gpu");
      const selectsGpuNodes = Object.keys(spec.nodeSelector || {}).some((k) => k.startsWith("nvidia.com/"));
      if (!tolerates || !selectsGpuNodes) {
        problem(where, "GPU pods need a nvidia.com/* nodeSelector and a nvidia.com/gpu toleration");
      }
    }
  }

  for (const s of servers) checkServer(variant, s, objects, ctx);
  for (const j of byKind("Job")) checkTrainingJob(variant, j, objects);
  if (gpu && byKind("Job").length === 0) problem(variant, "the gpu overlay has no training Job");

  for (const svc of byKind("Service")) {
    const where = `${variant}: ${id(svc)}`;
    const targets = workloads.filter((w) => selects(svc.spec.selector, podLabelsOf(w)));
    if (targets.length === 0) {
      problem(where, "its selector matches no workload's pods");
      continue;
    }
    for (const p of svc.spec.ports || []) {
      const tp = p.targetPort === undefined ? p.port : p.targetPort;
      const ok = targets.some((w) => allContainers(podSpecOf(w)).some((c) => (c.ports || []).some(
          (cp) => cp.containerPort === tp || cp.name === tp)));
      if (!ok) problem(where, `port ${p.name}: targetPort ${tp} is no container port of its pods`);
    }
  }
  for (const pdb of byKind("PodDisruptionBudget")) {
    const sel = (pdb.spec.selector || {}).matchLabels;
    if (!workloads.some((w) => selects(sel, podLabelsOf(w)))) {
      problem(`${variant}: ${id(pdb)}`, "its selector matches no workload's pods");
    }
  }
  for (const hpa of byKind("HorizontalPodAutoscaler")) checkHpa(variant, hpa, objects, ctx);
  if (byKind("HorizontalPodAutoscaler").length === 0) problem(variant, "no HorizontalPodAutoscaler");
}

function checkServer(variant, s, objects, ctx) {
  const where = `${variant}: ${id(s)}`;
  const spec = podSpecOf(s);
  const named = (k, n) => objects.find((o) => o.kind === k && o.metadata.name === n);
  if (s.kind === "StatefulSet") {
    const gov = named("Service", s.spec.serviceName);
    if (!gov || gov.spec.clusterIP !== "None") {
      problem(where, `serviceName ${s.spec.serviceName} must be a headless Service of the render`);
    }
  }
  const services = objects.filter((o) => o.kind === "Service" &&
                                         selects(o.spec.selector, podLabelsOf(s)));
  if (!services.some((o) => o.spec.clusterIP === "None")) {
    problem(where, "no headless Service (clusterIP: None) selects the servers");
  }
  if (!services.some((o) => o.spec.clusterIP !== "None")) {
    problem(where, "no ClusterIP Service selects the servers");
  }
  if (!objects.some((o) => o.kind === "PodDisruptionBudget" &&
                           selects((o.spec.selector || {}).matchLabels, podLabelsOf(s)))) {
    problem(where, "no PodDisruptionBudget covers the servers");
  }
  const c = (spec.containers || [])[0];
  if (!c) return;
  const cw = `${where} container ${c.name}`;
  const grpcPort = ((c.ports || []).find((p) => p.name === "grpc") || {}).containerPort;
  const metricsPort = ((c.ports || []).find((p) => p.name === "metrics") || {}).containerPort;
  for (const name of ["startupProbe", "readinessProbe"]) {
    const p = c[name];
    if (!p || !p.grpc) problem(cw, `${name} must be the gRPC health check`);
    else if (p.grpc.port !== grpcPort) problem(cw, `${name} checks port ${p.grpc.port}, not ${grpcPort}`);
  }
  if (!c.livenessProbe) problem(cw, "no livenessProbe");
  else if (!probeIsPausedSafe(c.livenessProbe)) {
    problem(cw, "livenessProbe must pass while the server is paused or draining: a gRPC probe " +
                `must check ${JSON.stringify(LIVENESS_HEALTH_NAME)}, not ` +
                `${HEALTH_NAMES_PAUSE_CLEARS.map((n) => JSON.stringify(n)).join(" or ")} ` +
                "(Pause and drain set them NOT_SERVING) nor a name the server does not register " +
                "(NOT_FOUND), and an exec of `linvideo health` must ask for " +
                `--service=${LIVENESS_HEALTH_NAME} or accept NOT_SERVING`);
  } else if (c.livenessProbe.grpc && c.livenessProbe.grpc.port !== grpcPort) {
    problem(cw, `livenessProbe checks port ${c.livenessProbe.grpc.port}, not ${grpcPort}`);
  }
  const ann = (s.spec.template.metadata || {}).annotations || {};
  if (ann["prometheus.io/scrape"] !== "true" || Number(ann["prometheus.io/port"]) !== metricsPort) {
    problem(where, `pod annotations must say prometheus.io/scrape: "true" and prometheus.io/port: ` +
                   `"${metricsPort}" (the metrics container port)`);
  }

  const cfg = serverConfigOf(objects, spec, where);
  if (!cfg) return;
  const j = cfg.json;
  const argv = [...(c.command || []), ...(c.args || [])];
  const configArg = argv.find((a) => a.startsWith("--config="));
  if (!configArg) problem(cw, "does not pass --config=");
  else {
    const mount = mountFor(c, configArg.slice(9));
    if (!mount || mount.name !== cfg.volume.name) {
      problem(cw, `${configArg}: not in the mount of the ConfigMap volume ${cfg.volume.name}`);
    }
  }
  const flags = argv.slice(1).filter((a) => a !== configArg);
  for (const f of flags.filter((a) => !a.startsWith(ADVERTISE_FLAG))) {
    problem(cw, `${f}: every option belongs in server.json, not in flags (flags win); the only ` +
                "flag is the per-pod --replica.advertise");
  }
  const replicas = checkReplicas(variant, s, c, j, flags, objects, cw);
  if (ctx.server && replicas) {
    serverAcceptsCommand(ctx.server, cfg.text, flags.map((f) => replicas.expand(f)), where);
  }
  if (port(j.listen) !== grpcPort) problem(cw, `config listen ${j.listen} is not port ${grpcPort}`);
  if (!/^0\.0\.0\.0:|^\[::\]:/.test(j.listen || "")) problem(cw, `config listen ${j.listen} is not reachable from the Services`);
  if (port((j.metrics || {}).listen) !== metricsPort) {
    problem(cw, `config metrics.listen ${(j.metrics || {}).listen} is not port ${metricsPort}`);
  }
  if (Boolean(j.device && j.device.startsWith("cuda")) !== (variant === "gpu")) {
    problem(cw, `config device ${j.device} does not fit the ${variant} variant`);
  }
  const cpuLimit = quantityNumber(((c.resources || {}).limits || {}).cpu);
  if (!(j.threads >= 1 && j.threads <= cpuLimit)) {
    problem(cw, `config threads ${j.threads} must be 1..the CPU limit ${cpuLimit} ` +
                "(0 = every core of the node, beyond the CFS quota)");
  }
  // Every path the server reads or writes lies in a volume (the root file system is read-only).
  const paths = [
    ["checkpoint_root", j.checkpoint_root, true],
    ["state_dir", j.state_dir, true],
    ["jobs.root", (j.jobs || {}).root, true],
    ["auth.admin_token_file", (j.auth || {}).admin_token_file, false],
  ];
  const models = Array.isArray(j.models) ? j.models.map((m) => [m.name, m.path])
                                          : Object.entries(j.models || {});
  if (models.length === 0) problem(cw, "config serves no model");
  for (const [name, file, writable] of paths) {
    if (!file) {
      if (name !== "jobs.root") problem(cw, `config ${name} is not set`);
      continue;
    }
    const m = mountFor(c, file);
    if (!m) problem(cw, `config ${name} ${file} lies in no volume (the root file system is read-only)`);
    else if (writable && m.readOnly) problem(cw, `config ${name} ${file} lies in a read-only mount`);
  }
  // A model folder lies in a volume or is baked into the image (a COPY of the Dockerfile).
  for (const [name, dir] of models) {
    const image = ctx.images[variant === "gpu" ? "gpu" : "cpu"];
    if (!mountFor(c, dir) && !image.dirs.has(String(dir).replace(/\/$/, ""))) {
      problem(cw, `config model ${name} ${dir} lies in no volume and is not in the image ` +
                  `(${image.file || "no --dockerfile given"})`);
    }
  }
  const tokenFile = (j.auth || {}).admin_token_file;
  const tokenMount = tokenFile && mountFor(c, tokenFile);
  if (tokenMount) {
    const vol = (spec.volumes || []).find((v) => v.name === tokenMount.name);
    const secret = vol && vol.secret && named("Secret", vol.secret.secretName);
    const key = path.relative(tokenMount.mountPath, tokenFile);
    if (!secret) problem(cw, `auth.admin_token_file ${tokenFile} is not in a Secret volume`);
    else if (!(secret.data || {})[key] && !(secret.stringData || {})[key]) {
      problem(cw, `Secret ${secret.metadata.name} has no key ${key} (auth.admin_token_file)`);
    }
    if (tokenMount.subPath) problem(cw, "the token mount must not use subPath (no live rotation)");
  }
  // SIGTERM: preStop, then drain_grace_s for requests, then jobs.cancel_grace_s for children.
  const preStop = ((c.lifecycle || {}).preStop || {}).exec;
  const sleep = preStop && preStop.command[0] === "sleep" ? Number(preStop.command[1]) : 0;
  const needed = (j.drain_grace_s === undefined ? 30 : j.drain_grace_s) + sleep +
                 ((j.jobs || {}).cancel_grace_s === undefined ? 10 : j.jobs.cancel_grace_s);
  if (!(spec.terminationGracePeriodSeconds > needed)) {
    problem(where, `terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} must exceed ` +
                   `preStop + drain_grace_s + jobs.cancel_grace_s = ${needed}`);
  }
}

// The highest pod ordinal the server workload may reach: its replicas or an HPA's maxReplicas.
function maxOrdinal(s, objects) {
  let n = s.spec.replicas === undefined ? 1 : s.spec.replicas;
  for (const h of objects.filter((o) => o.kind === "HorizontalPodAutoscaler")) {
    const ref = h.spec.scaleTargetRef || {};
    if (ref.kind === s.kind && ref.name === s.metadata.name) {
      n = Math.max(n, h.spec.maxReplicas || 0);
    }
  }
  return { ordinal: Math.max(0, n - 1), replicas: n };
}

// Several replicas (docs/serving.md, "Several replicas"): every pod passes
// --replica.advertise=HOST, HOST = its own DNS name under the StatefulSet's governing Service
// ($(VAR) of the downward API's metadata.name, then ".serviceName"), so the ids it generates name
// it and the other replicas forward Get/Cancel there. The governing Service publishes not-ready
// addresses (a paused or draining pod still answers forwarded calls), a headless Service of Ready
// pods only is there for clients' round robin, HOST stays within 30 characters up to the highest
// ordinal the HPA may create, and connections age out so clients reach new pods. Returns
// { expand } (the flags as the kubelet expands them for the highest ordinal), or null when the
// flags cannot be expanded.
function checkReplicas(variant, s, c, j, flags, objects, cw) {
  const where = `${variant}: ${id(s)}`;
  const { ordinal, replicas } = maxOrdinal(s, objects);
  const podName = `${s.metadata.name}-${ordinal}`;
  const env = new Map((c.env || []).map((e) => [e.name, e]));
  let ok = true;
  const reference = /\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g;  // $(VAR), as the kubelet expands it
  const expand = (text, onPodName) => text.replace(reference, (all, name) => {
    const e = env.get(name);
    if (!e) {
      problem(cw, `${text}: $(${name}) is no env variable of the container (the kubelet leaves ` +
                  "it unexpanded)");
      ok = false;
      return all;
    }
    if (e.value !== undefined) return String(e.value);
    const field = e.valueFrom && e.valueFrom.fieldRef && e.valueFrom.fieldRef.fieldPath;
    if (field === "metadata.name") {
      if (onPodName) onPodName(name);
      return podName;
    }
    problem(cw, `${text}: $(${name}) is not the pod's name (valueFrom.fieldRef metadata.name): ` +
                "every pod must advertise its own host");
    ok = false;
    return all;
  });
  const replicaCfg = j.replica || {};
  if (replicaCfg.advertise !== undefined) {
    problem(cw, "config replica.advertise: a server.json shared by every pod gives them all the " +
                "same name; pass --replica.advertise=$(POD_NAME).SERVICE per pod");
  }
  if (!(((j.grpc || {}).max_connection_age_s) > 0) && replicas > 1) {
    problem(cw, "config grpc.max_connection_age_s must be > 0: without it clients never " +
                `re-resolve the Service and pods the HPA adds (up to ${replicas}) get no traffic ` +
                "from them");
  }
  const services = objects.filter((o) => o.kind === "Service" && o.spec.clusterIP === "None" &&
                                         selects(o.spec.selector, podLabelsOf(s)));
  if (services.length && !services.some((o) => o.spec.publishNotReadyAddresses !== true)) {
    problem(where, "no headless Service lists only Ready pods for clients' round robin " +
                   "(publishNotReadyAddresses: true would send new work to paused, draining " +
                   "and starting pods)");
  }
  const adv = flags.filter((f) => f.startsWith(ADVERTISE_FLAG));
  if (adv.length !== 1) {
    problem(cw, `${adv.length ? "more than one" : "no"} --replica.advertise: each pod must ` +
                "advertise its own name, or request ids name no replica and Get/Cancel find a " +
                "request only on the pod that took it");
    return ok ? { expand: (f) => expand(f) } : null;
  }
  if (((j.tls || {}).cert_file || "") !== "") {
    problem(cw, "tls.cert_file with --replica.advertise: the server refuses it (replicas forward " +
                "over plaintext; terminate TLS in front of them)");
  }
  const raw = adv[0].slice(ADVERTISE_FLAG.length);
  let usesPodName = false;
  const value = expand(raw, () => { usesPodName = true; });
  if (!ok) return null;
  if (!usesPodName) {
    problem(cw, `--replica.advertise=${raw} names no pod ($(VAR) of the downward API's ` +
                "metadata.name): every pod would advertise the same host");
  }
  const colon = value.lastIndexOf(":");
  const host = colon < 0 ? value : value.slice(0, colon);
  const grpcPort = ((c.ports || []).find((p) => p.name === "grpc") || {}).containerPort;
  if (colon >= 0 && Number(value.slice(colon + 1)) !== grpcPort) {
    problem(cw, `--replica.advertise=${raw}: port ${value.slice(colon + 1)} is not the gRPC ` +
                `port ${grpcPort}`);
  }
  if (!/^[A-Za-z0-9.-]+$/.test(host)) {
    problem(cw, `--replica.advertise=${raw}: host ${host} has characters other than [A-Za-z0-9.-]`);
  }
  if (host.length > MAX_ADVERTISE_HOST) {
    problem(cw, `--replica.advertise=${raw}: host ${host} (ordinal ${ordinal}: ${replicas} ` +
                `replicas, the HPA's maxReplicas) is ${host.length} characters, longer than ` +
                `${MAX_ADVERTISE_HOST} (server/replica_router.h: ids stay within 64)`);
  }
  if (s.kind === "StatefulSet") {
    const gov = s.spec.serviceName;
    const want = `${podName}.${gov}`;
    if (usesPodName && !(host === want || host.startsWith(want + "."))) {
      problem(cw, `--replica.advertise=${raw}: ${host} is not the pod's DNS name under its ` +
                  `governing Service, ${want} (serviceName ${gov}): other replicas could not ` +
                  "resolve it");
    }
    const svc = objects.find((o) => o.kind === "Service" && o.metadata.name === gov);
    if (svc && svc.spec.clusterIP === "None" && svc.spec.publishNotReadyAddresses !== true) {
      problem(`${variant}: ${id(svc)}`, "the governing Service, whose names the replicas " +
              "advertise, needs publishNotReadyAddresses: true: a paused, draining or starting " +
              "pod must stay resolvable for forwarded Get/Cancel");
    }
  } else {
    problem(cw, "--replica.advertise needs stable per-pod DNS names: a StatefulSet");
  }
  return { expand: (f) => expand(f) };
}

function checkHpa(variant, hpa, objects, ctx) {
  const where = `${variant}: ${id(hpa)}`;
  const ref = hpa.spec.scaleTargetRef || {};
  const target = objects.find((o) => o.kind === ref.kind && o.metadata.name === ref.name &&
                                     o.apiVersion === ref.apiVersion);
  if (!target) {
    problem(where, `scaleTargetRef ${ref.apiVersion} ${ref.kind}/${ref.name} is not in the render`);
  } else if (podLabelsOf(target)["app.kubernetes.io/component"] !== SERVER_COMPONENT) {
    problem(where, "must scale the server workload");
  }
  if (!(hpa.spec.minReplicas >= 1 && hpa.spec.maxReplicas >= hpa.spec.minReplicas)) {
    problem(where, "needs 1 <= minReplicas <= maxReplicas");
  }
  const metrics = (hpa.spec.metrics || []).filter((m) => m.type === "Pods");
  if (metrics.length === 0) problem(where, "has no Pods metric (per-pod queue depth)");
  for (const m of metrics) {
    const name = m.pods.metric.name;
    const rule = ctx.rules.find((r) => ((r.name || {}).as || seriesMetric(r)) === name);
    if (!rule) {
      problem(where, `Pods metric ${name} is served by no prometheus-adapter rule (${ctx.adapter})`);
      continue;
    }
    if (m.pods.target.type !== "AverageValue") problem(where, `metric ${name}: target must be AverageValue`);
    const series = seriesMetric(rule);
    if (!ctx.exported.has(series)) {
      problem(ctx.adapter, `seriesQuery names ${series}, which server/metrics.cc does not export`);
    }
    const ov = (rule.resources || {}).overrides || {};
    if (((ov.pod || {}).resource) !== "pod" || ((ov.namespace || {}).resource) !== "namespace") {
      problem(ctx.adapter, `rule for ${name}: resources.overrides must map the pod and namespace labels`);
    }
    for (const part of ["<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"]) {
      if (!String(rule.metricsQuery || "").includes(part)) {
        problem(ctx.adapter, `rule for ${name}: metricsQuery lacks ${part}`);
      }
    }
    if (!/^sum\(/.test(String(rule.metricsQuery || ""))) {
      problem(ctx.adapter, `rule for ${name}: metricsQuery must sum the priorities of a pod`);
    }
  }
}

function seriesMetric(rule) {
  const m = /^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(String(rule.seriesQuery || ""));
  return m ? m[1] : null;
}

function checkTrainingJob(variant, job, objects) {
  const where = `${variant}: ${id(job)}`;
  const spec = podSpecOf(job);
  const n = job.spec.completions;
  if (job.spec.completionMode !== "Indexed") problem(where, "must be an Indexed Job (RANK = index)");
  if (job.spec.parallelism !== n) problem(where, `parallelism ${job.spec.parallelism} != completions ${n}`);
  const svc = objects.find((o) => o.kind === "Service" && o.metadata.name === spec.subdomain);
  if (!svc || svc.spec.clusterIP !== "None" || !selects(svc.spec.selector, podLabelsOf(job))) {
    problem(where, `subdomain ${spec.subdomain} must be a headless Service selecting the Job's pods`);
  } else if (svc.spec.publishNotReadyAddresses !== true) {
    problem(`${variant}: ${id(svc)}`, "publishNotReadyAddresses must be true (ranks meet while starting)");
  }
  for (const c of spec.containers || []) {
    const cw = `${where} container ${c.name}`;
    const env = Object.fromEntries((c.env || []).map((e) => [e.name, e]));
    if (!env.WORLD_SIZE || Number(env.WORLD_SIZE.value) !== n) {
      problem(cw, `WORLD_SIZE must equal completions (${n})`);
    }
    const rank = env.RANK && env.RANK.valueFrom && env.RANK.valueFrom.fieldRef;
    if (!rank || rank.fieldPath !== "metadata.annotations['batch.kubernetes.io/job-completion-index']") {
      problem(cw, "RANK must come from the completion index annotation");
    }
    if (!env.LOCAL_RANK) problem(cw, "LOCAL_RANK is not set");
    const master = `${job.metadata.name}-0.${spec.subdomain}`;
    if (!env.MASTER_ADDR || env.MASTER_ADDR.value !== master) {
      problem(cw, `MASTER_ADDR must be rank 0's pod, ${master}`);
    }
    const mport = env.MASTER_PORT && Number(env.MASTER_PORT.value);
    if (svc && !(svc.spec.ports || []).some((p) => p.port === mport)) {
      problem(cw, `MASTER_PORT ${mport} is not a port of Service ${spec.subdomain}`);
    }
    for (const m of c.volumeMounts || []) {
      const v = (spec.volumes || []).find((x) => x.name === m.name);
      const pvc = v && v.persistentVolumeClaim && objects.find(
          (o) => o.kind === "PersistentVolumeClaim" && o.metadata.name === v.persistentVolumeClaim.claimName);
      if (pvc && !(pvc.spec.accessModes || []).includes("ReadWriteMany")) {
        problem(cw, `PVC ${pvc.metadata.name} is shared by all ranks: it must be ReadWriteMany`);
      }
    }
  }
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const exported = args.metrics ? exportedMetrics(args.metrics) : new Set();
  const images = {
    cpu: { file: args.dockerfile, dirs: args.dockerfile ? imageDirs(args.dockerfile) : new Set() },
  };
  const gpuFile = args["dockerfile-gpu"] || args.dockerfile;
  images.gpu = { file: gpuFile, dirs: gpuFile ? imageDirs(gpuFile) : new Set() };
  const all = [];  // [case, variant, objects]
  for (const [caseName, dir] of args.cases) {
    current = caseName;
    problems.set(caseName, []);
    const adapter = path.join(dir, "adapter.yaml");
    // The server runs in a scratch folder: a relative path is resolved here.
    const server = args.server && args.server.includes("/") ? path.resolve(args.server)
                                                            : args.server;
    const ctx = { server, adapter: "prometheus-adapter/values.yaml", exported,
                  images,
                  rules: fs.existsSync(adapter) ? adapterRules(adapter) : [] };
    if (args.promtool && ctx.rules.length) {
      const complaint = promqlCheck(args.promtool, ctx.rules);
      if (complaint) problem(ctx.adapter, `the queries are not PromQL: ${complaint}`);
    }
    for (const v of VARIANTS) {
      const file = path.join(dir, `${v}.yaml`);
      if (!fs.existsSync(file)) {
        problem(v, `${file} is missing`);
        continue;
      }
      const objects = loadRendered(file);
      all.push([caseName, v, objects]);
      schemaCheck(v, objects);
      checkVariant(v, objects, ctx);
    }
  }
  strictFieldCheck(all);
  let unexpected = 0;
  for (const [caseName] of args.cases) {
    const found = problems.get(caseName);
    const want = args.expected.get(caseName);
    const count = all.filter(([c]) => c === caseName).reduce((n, [, , o]) => n + o.length, 0);
    if (want === undefined) {
      if (found.length === 0) {
        const sizes = all.filter(([c]) => c === caseName).map(([, v, o]) => `${v} ${o.length}`);
        console.log(`ok: ${caseName}: ${count} rendered objects (${sizes.join(", ")}) pass the ` +
                    `kubernetes-models ${require("kubernetes-models/package.json").version} ` +
                    `schemas, the strict field check (TypeScript ${ts.version}) and the ` +
                    "semantic checks");
      } else {
        unexpected++;
        for (const p of found) console.log(`FAIL ${caseName}: ${p}`);
        console.log(`${caseName}: ${found.length} problem(s) in ${count} rendered objects`);
      }
    } else {
      const hit = found.find((p) => p.includes(want));
      if (hit) {
        console.log(`caught: ${caseName} -> ${hit}`);
      } else {
        unexpected++;
        console.log(`NOT CAUGHT: ${caseName}: no problem line contains '${want}'; found:`);
        for (const p of found) console.log(`  ${p}`);
      }
    }
  }
  process.exit(unexpected ? 1 : 0);
}

main();
