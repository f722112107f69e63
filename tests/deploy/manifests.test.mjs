// manifests.test.mjs -- offline checks of the Kubernetes manifests (deploy/k8s/).
//
//   node tests/deploy/manifests.test.mjs <build-dir>
//
// For each overlay (dev, production): kubectl kustomize renders it; every
// object validates against its schema (kubernetes-models, KEDA,
// Prometheus operator); the policy holds (probes, resources, hardened
// security contexts, PodDisruptionBudgets, HA in production); the
// environment the manifests give each service matches what the binary reads
// (`<build-dir>/services/<svc>/<svc> --config-json`), secrets only from
// Secrets; the Ingress and the NetworkPolicies are there. No cluster needed:
// `kubectl` from PATH renders and converts, nothing is sent anywhere.
// Prints "ok - ..." / "not ok - ..." lines; exits 1 on any failure.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import {
  describe,
  durationSeconds,
  findKubectl,
  podLabelsOf,
  podSpecOf,
  renderOverlay,
  selectorMatches,
  serviceConfig,
  validateObject,
} from "./k8s_lib.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const OVERLAYS = ["dev", "production"];
const SERVICES = ["token-issuer", "ingest-recorder", "chunk-store", "r2-uploader", "muxer"];

// Secrets are created by the operator (deploy/k8s/README.md), not rendered:
// the keys each one holds.
const SECRET_KEYS = {
  "seashore-db": ["DATABASE_URL"],
  "seashore-s3": ["R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"],
  "seashore-tokens": ["INGEST_TOKEN_SECRET", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "CLERK_JWT_KEY", "CLERK_WEBHOOK_SECRET"],
};

// The JetStream consumer each KEDA-scaled service works from (docs/chunk-path.md).
const KEDA_CONSUMERS = { "r2-uploader": "r2-uploader-parts", muxer: "muxer" };

// The services whose SIGTERM handling waits up to DRAIN_TIMEOUT: only
// ingest-recorder (services/ingest-recorder/main.c, serve()). The others stop
// at once: token-issuer stops its HTTP daemon (main.c), chunk-store drains its
// subscriptions and stops (main.c), r2-uploader and muxer cut their work and
// nak it (libseashore/src/work.c, ss_work_heartbeat). DRAIN_TIMEOUT set on
// those would promise a drain that does not happen.
const DRAIN_HONOURED = new Set(["ingest-recorder"]);
// Seconds a pod behind the Ingress keeps serving after it is marked for
// deletion, while its endpoint leaves ingress-nginx's upstreams.
const MIN_PRESTOP_SLEEP = 5;
// Seconds of the grace period left after the preStop sleep and the drain.
const GRACE_MARGIN = 5;

// nats-server's measured memory (docs/performance.md, scale curve
// 2026-12-03): 2181 MiB PSS at 200 recorders. Production's limit must be
// above it (docs/deploy.md §3 sizes a cluster for ~270).
const NATS_MEASURED_200_MIB = 2181;

// Variables that may be literals in a pod template: the listen addresses,
// tied to the pod spec (their port must equal one of the container's
// containerPorts, checked below). Everything else a container gets comes
// from a ConfigMap or a Secret (issue 8: "the rest from a ConfigMap"), so
// overlays change settings by merging ConfigMaps, never by patching env.
const LITERAL_ALLOWED = new Set(["OPS_LISTEN", "HTTP_LISTEN", "WS_LISTEN"]);
// The downward API: the pod's identity, not a setting (nats.conf's server_name).
const FIELD_REF_ALLOWED = { POD_NAME: "metadata.name" };

// The images Sea Shore builds (deploy/docker/): released together.
const SEASHORE_IMAGE = /^ghcr\.io\/seashore\/(token-issuer|ingest-recorder|chunk-store|r2-uploader|muxer|migrate)(?::([^@]+))?(?:@(.+))?$/;

// ---- tiny runner ----

let failures = 0;
function report(name, problems) {
  if (problems.length === 0) {
    console.log(`ok - ${name}`);
    return;
  }
  failures++;
  console.log(`not ok - ${name}`);
  for (const p of problems) console.log(`  # ${p}`);
}
function check(name, fn) {
  try {
    report(name, fn() ?? []);
  } catch (err) {
    report(name, [err.message]);
  }
}

const byKind = (objs, kind) => objs.filter((o) => o.kind === kind);
const named = (objs, kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const workloads = (objs) => objs.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet");
const allContainers = (spec) => [...(spec.initContainers ?? []), ...(spec.containers ?? [])];

// ---- 2. schemas ----

function schemaProblems(objs) {
  return objs.map(validateObject).filter(Boolean);
}

// The validator must reject what the API server would: a negative control.
function negativeSchemaProblems() {
  const problems = [];
  const bad = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "bad" },
    spec: {
      replicas: "two",
      selector: { matchLabels: { a: "b" } },
      template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c", image: "i" }] } },
    },
  };
  if (!validateObject(bad)) problems.push("a Deployment with spec.replicas \"two\" passed validation");
  const good = structuredClone(bad);
  good.spec.replicas = 2;
  const err = validateObject(good);
  if (err) problems.push(`the same Deployment with replicas 2 failed: ${err}`);
  if (!validateObject({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } }))
    problems.push("an unknown kind example.com/v1 Widget passed validation");
  const badSo = { apiVersion: "keda.sh/v1alpha1", kind: "ScaledObject", metadata: { name: "s" }, spec: { triggers: [] } };
  if (!validateObject(badSo)) problems.push("a ScaledObject without scaleTargetRef passed validation");
  const typo = structuredClone(good);
  typo.spec.template.spec.containers[0].readinesProbe = { httpGet: { path: "/readyz", port: 9090 } };
  const typoErr = validateObject(typo);
  if (!typoErr?.includes("spec.template.spec.containers[0].readinesProbe"))
    problems.push(`a Deployment with a misspelt readinesProbe was not refused by name: ${typoErr}`);
  return problems;
}

// The same on rendered objects: each overlay's Deployments with their
// readinessProbe misspelt, and a ScaledObject with a misspelt trigger field.
function negativeRenderedSchemaProblems(objs) {
  const p = [];
  for (const d of byKind(objs, "Deployment")) {
    const bad = structuredClone(d);
    const c = podSpecOf(bad).containers[0];
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    if (!validateObject(bad)?.includes("readinesProbe")) p.push(`${describe(d)} with readinessProbe misspelt passed validation`);
  }
  for (const so of byKind(objs, "ScaledObject")) {
    const bad = structuredClone(so);
    bad.spec.minReplicas = bad.spec.minReplicaCount; // the HPA's name, not KEDA's
    if (!validateObject(bad)?.includes("spec.minReplicas")) p.push(`${describe(so)} with spec.minReplicas passed validation`);
  }
  return p;
}

// ---- 3. policy ----

function containerProblems(where, c, pod, { probes }) {
  const p = [];
  const sc = c.securityContext ?? {};
  const psc = pod.securityContext ?? {};
  const at = `${where} container ${c.name}`;
  for (const kind of ["requests", "limits"])
    for (const r of ["cpu", "memory"])
      if (!c.resources?.[kind]?.[r]) p.push(`${at}: resources.${kind}.${r} is not set`);
  if (probes) {
    if (!c.readinessProbe) p.push(`${at}: no readinessProbe`);
    if (!c.livenessProbe) p.push(`${at}: no livenessProbe`);
  }
  if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) p.push(`${at}: runAsNonRoot is not true`);
  if (sc.readOnlyRootFilesystem !== true) p.push(`${at}: securityContext.readOnlyRootFilesystem is not true`);
  if (sc.allowPrivilegeEscalation !== false) p.push(`${at}: securityContext.allowPrivilegeEscalation is not false`);
  if (!(sc.capabilities?.drop ?? []).includes("ALL")) p.push(`${at}: securityContext.capabilities.drop lacks ALL`);
  if (sc.seccompProfile?.type !== "RuntimeDefault") p.push(`${at}: securityContext.seccompProfile.type is not RuntimeDefault`);
  return p;
}

function podProblems(obj) {
  const where = describe(obj);
  const pod = podSpecOf(obj);
  if (!pod) return [`${where}: no pod template`];
  const p = [];
  const psc = pod.securityContext ?? {};
  if (psc.runAsNonRoot !== true) p.push(`${where}: spec.template.spec.securityContext.runAsNonRoot is not true`);
  if (psc.runAsUser !== 10001 || psc.runAsGroup !== 10001) p.push(`${where}: pod runAsUser/runAsGroup are not 10001`);
  if (psc.seccompProfile?.type !== "RuntimeDefault") p.push(`${where}: pod seccompProfile is not RuntimeDefault`);
  const probes = obj.kind !== "Job";
  for (const c of pod.initContainers ?? []) p.push(...containerProblems(where, c, pod, { probes: false }));
  for (const c of pod.containers ?? []) p.push(...containerProblems(where, c, pod, { probes }));
  return p;
}

function pdbProblems(objs, obj) {
  const labels = podLabelsOf(obj);
  const pdbs = byKind(objs, "PodDisruptionBudget").filter((b) => selectorMatches(b.spec?.selector, labels));
  if (pdbs.length === 0) return [`${describe(obj)}: no PodDisruptionBudget selects its pods`];
  if (pdbs.length > 1) return [`${describe(obj)}: several PodDisruptionBudgets select its pods: ${pdbs.map(describe)}`];
  return [];
}

// The service's ops probes, and what SIGTERM does (drainProblems).
function serviceProbeAndDrainProblems(objs, obj) {
  const pod = podSpecOf(obj);
  const c = pod.containers.find((x) => x.name === obj.metadata.name);
  const where = describe(obj);
  if (!c) return [`${where}: no container named ${obj.metadata.name}`];
  const p = [];
  if (c.readinessProbe?.httpGet?.path !== "/readyz") p.push(`${where}: readinessProbe is not GET /readyz`);
  if (c.livenessProbe?.httpGet?.path !== "/healthz") p.push(`${where}: livenessProbe is not GET /healthz`);
  if (!c.startupProbe) p.push(`${where}: no startupProbe`);
  for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"])
    if (c[probe] && c[probe].httpGet?.port !== "ops") p.push(`${where}: ${probe} is not on the port named ops`);
  if (!(c.ports ?? []).some((port) => port.name === "ops" && port.containerPort === 9090))
    p.push(`${where}: no container port ops 9090`);
  return [...p, ...drainProblems(objs, obj)];
}

// Seconds of the container's preStop sleep (exec sleep N, or the built-in
// sleep action), 0 without one.
function preStopSleep(c) {
  const hook = c.lifecycle?.preStop;
  if (!hook) return 0;
  if (hook.sleep) return Number(hook.sleep.seconds) || 0;
  const cmd = hook.exec?.command ?? [];
  if (cmd.length === 2 && (cmd[0] === "/bin/sleep" || cmd[0] === "sleep")) return Number(cmd[1]) || 0;
  return 0;
}

// What SIGTERM does, against the pod's settings:
//   - DRAIN_TIMEOUT is set (to a literal) exactly where the service uses it;
//   - a service the Ingress routes to has a preStop sleep, so it keeps
//     serving until its endpoint is gone (SIGTERM comes after the hook);
//   - the grace period covers the sleep, the drain and a margin.
function drainProblems(objs, obj) {
  const svc = obj.metadata.name;
  const pod = podSpecOf(obj);
  const c = pod.containers.find((x) => x.name === svc);
  const where = describe(obj);
  const p = [];
  const drain = envValue(objs, c, "DRAIN_TIMEOUT");
  let drainSeconds = 0;
  if (DRAIN_HONOURED.has(svc)) {
    if (drain === undefined) p.push(`${where}: DRAIN_TIMEOUT is not set (to a literal or a ConfigMap key)`);
    else if (!Number.isFinite((drainSeconds = durationSeconds(drain)))) p.push(`${where}: DRAIN_TIMEOUT "${drain}" is not a duration`);
  } else if (drain !== undefined) p.push(`${where}: sets DRAIN_TIMEOUT, which ${svc} does not wait for (it hands in-flight work back at once)`);
  const sleep = preStopSleep(c);
  const routed = byKind(objs, "Ingress").some((ing) =>
    (ing.spec.rules ?? []).some((r) => (r.http?.paths ?? []).some((x) => x.backend?.service?.name === svc)),
  );
  if (routed && sleep < MIN_PRESTOP_SLEEP) p.push(`${where}: the Ingress routes to it but its preStop sleep is ${sleep}s, want >= ${MIN_PRESTOP_SLEEP}s`);
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  if (grace < sleep + drainSeconds + GRACE_MARGIN)
    p.push(`${where}: terminationGracePeriodSeconds ${grace} < preStop ${sleep}s + drain ${drainSeconds}s + ${GRACE_MARGIN}s`);
  return p;
}

// The drain check must catch what it is for: mutated copies.
function negativeDrainProblems(objs) {
  const p = [];
  const mutate = (svc, fn) => {
    const copy = structuredClone(objs);
    const d = named(copy, "Deployment", svc);
    fn(podSpecOf(d), podSpecOf(d).containers.find((x) => x.name === svc));
    return drainProblems(copy, d);
  };
  if (!mutate("token-issuer", (_, c) => delete c.lifecycle).some((m) => m.includes("preStop sleep is 0s")))
    p.push("token-issuer without a preStop sleep went unnoticed");
  if (!mutate("muxer", (_, c) => c.env.push({ name: "DRAIN_TIMEOUT", value: "120s" })).some((m) => m.includes("sets DRAIN_TIMEOUT")))
    p.push("DRAIN_TIMEOUT on muxer went unnoticed");
  if (!mutate("ingest-recorder", (pod) => (pod.terminationGracePeriodSeconds = 30)).some((m) => m.includes("terminationGracePeriodSeconds 30")))
    p.push("an ingest-recorder grace period below preStop + DRAIN_TIMEOUT went unnoticed");
  return p;
}

function targetsOf(objs, name) {
  const hpa = byKind(objs, "HorizontalPodAutoscaler").find((h) => h.spec.scaleTargetRef.name === name);
  const so = byKind(objs, "ScaledObject").find((s) => s.spec.scaleTargetRef.name === name);
  return { hpa, so };
}

// Replicas a workload keeps at least: its own count or its autoscaler's minimum.
function minReplicas(objs, obj) {
  const { hpa, so } = targetsOf(objs, obj.metadata.name);
  if (hpa) return hpa.spec.minReplicas ?? 1;
  if (so) return so.spec.minReplicaCount ?? 0;
  return obj.spec.replicas ?? 1;
}

function configValue(objs, key) {
  const cm = byKind(objs, "ConfigMap").find((c) => c.metadata.name.startsWith("seashore-config"));
  return cm?.data?.[key];
}

function natsConfig(objs) {
  const cm = byKind(objs, "ConfigMap").find((c) => c.metadata.name.startsWith("nats-config"));
  return cm?.data?.["nats.conf"] ?? "";
}

function haProblems(objs, overlay) {
  const p = [];
  const nats = named(objs, "StatefulSet", "nats");
  if (!nats) return ["StatefulSet/nats is missing"];
  const wantNats = overlay === "production" ? 3 : 1;
  if (nats.spec.replicas !== wantNats) p.push(`StatefulSet/nats: replicas ${nats.spec.replicas}, want ${wantNats}`);
  const clustered = /^cluster\s*\{/m.test(natsConfig(objs));
  if (clustered !== (overlay === "production")) p.push(`nats.conf: cluster block ${clustered ? "present" : "missing"} in ${overlay}`);
  const wantReplicas = overlay === "production" ? "3" : "1";
  if (configValue(objs, "CHUNK_LOG_REPLICAS") !== wantReplicas)
    p.push(`ConfigMap seashore-config: CHUNK_LOG_REPLICAS ${configValue(objs, "CHUNK_LOG_REPLICAS")}, want ${wantReplicas}`);
  for (const svc of SERVICES) {
    const d = named(objs, "Deployment", svc);
    if (!d) continue;
    const min = minReplicas(objs, d);
    if (overlay === "production" && min < 2) p.push(`${describe(d)}: at least ${min} replica(s) in production, want >= 2`);
    if (overlay === "dev" && min > 1) p.push(`${describe(d)}: at least ${min} replicas in dev, want 1`);
  }
  if (overlay === "production")
    for (const b of byKind(objs, "PodDisruptionBudget"))
      if (b.metadata.name !== "nats" && b.spec.minAvailable !== 1) p.push(`${describe(b)}: minAvailable is not 1`);
  return p;
}

// Autoscalers point at rendered Deployments; KEDA reads the right consumer.
function scalingProblems(objs) {
  const p = [];
  for (const svc of ["token-issuer", "ingest-recorder"]) {
    const { hpa } = targetsOf(objs, svc);
    if (!hpa) p.push(`no HorizontalPodAutoscaler targets Deployment/${svc}`);
  }
  const hpaIr = targetsOf(objs, "ingest-recorder").hpa;
  if (hpaIr && !hpaIr.spec.metrics.some((m) => m.resource?.name === "memory"))
    p.push("HorizontalPodAutoscaler/ingest-recorder: no memory metric");
  for (const [svc, consumer] of Object.entries(KEDA_CONSUMERS)) {
    const { so } = targetsOf(objs, svc);
    if (!so) {
      p.push(`no ScaledObject targets Deployment/${svc}`);
      continue;
    }
    const t = so.spec.triggers.find((x) => x.type === "nats-jetstream");
    if (!t) p.push(`${describe(so)}: no nats-jetstream trigger`);
    else {
      for (const k of ["natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"])
        if (!t.metadata?.[k]) p.push(`${describe(so)}: trigger metadata.${k} is not set`);
      if (t.metadata.stream !== "WORK") p.push(`${describe(so)}: stream ${t.metadata.stream}, want WORK`);
      if (t.metadata.consumer !== consumer) p.push(`${describe(so)}: consumer ${t.metadata.consumer}, want ${consumer}`);
    }
  }
  for (const o of [...byKind(objs, "HorizontalPodAutoscaler"), ...byKind(objs, "ScaledObject")])
    if (!named(objs, "Deployment", o.spec.scaleTargetRef.name)) p.push(`${describe(o)}: target ${o.spec.scaleTargetRef.name} is not rendered`);
  if (named(objs, "Deployment", "chunk-store") && targetsOf(objs, "chunk-store").so) p.push("chunk-store must not be autoscaled");
  return p;
}

// ---- 3b. where settings come from ----

// The value a container sees for `name`, as kubelet resolves it: env (a
// literal or a ConfigMap key) over envFrom ConfigMaps (the last wins).
// undefined when unset or only in a Secret (not rendered).
function envValue(objs, c, name) {
  const configMap = (n) => byKind(objs, "ConfigMap").find((m) => m.metadata.name === n);
  const e = (c?.env ?? []).find((x) => x.name === name);
  if (e) {
    if (e.value !== undefined) return e.value;
    const ref = e.valueFrom?.configMapKeyRef;
    return ref ? configMap(ref.name)?.data?.[ref.key] : undefined;
  }
  let value;
  for (const from of c?.envFrom ?? []) {
    const data = from.configMapRef ? configMap(from.configMapRef.name)?.data ?? {} : {};
    const key = name.startsWith(from.prefix ?? "") ? name.slice((from.prefix ?? "").length) : null;
    if (key !== null && key in data) value = data[key];
  }
  return value;
}

// Every environment variable of every container (init containers, the
// Job, NATS) comes from a ConfigMap or a Secret. The exceptions: the
// listen addresses (LITERAL_ALLOWED), whose port must be one of the
// container's containerPorts, and the pod-name downward API reference.
// Every containerPort of a Sea Shore service has its listen address set
// (the port is not left to a default that could drift from it).
function envSourceProblems(objs) {
  const p = [];
  for (const w of [...workloads(objs), ...byKind(objs, "Job")])
    for (const c of allContainers(podSpecOf(w))) {
      const at = `${describe(w)} container ${c.name}`;
      const ports = new Set((c.ports ?? []).map((x) => x.containerPort));
      const listened = new Set();
      for (const e of c.env ?? []) {
        const ref = e.valueFrom;
        if (ref?.configMapKeyRef || ref?.secretKeyRef) continue;
        if (ref?.fieldRef) {
          if (FIELD_REF_ALLOWED[e.name] !== ref.fieldRef.fieldPath)
            p.push(`${at}: ${e.name} comes from fieldRef ${ref.fieldRef.fieldPath}, not from a ConfigMap or Secret`);
          continue;
        }
        if (ref) {
          p.push(`${at}: ${e.name} comes from ${Object.keys(ref).join(", ")}, not from a ConfigMap or Secret`);
          continue;
        }
        if (!LITERAL_ALLOWED.has(e.name)) {
          p.push(`${at}: ${e.name} is the literal "${e.value}" in the pod template; put it in a ConfigMap (or a Secret)`);
          continue;
        }
        const port = Number(String(e.value).match(/:(\d+)$/)?.[1]);
        if (!ports.has(port)) p.push(`${at}: ${e.name} "${e.value}" listens on a port that is not a containerPort (${[...ports].join(", ") || "none"})`);
        listened.add(port);
      }
      for (const from of c.envFrom ?? [])
        if (!from.configMapRef && !from.secretRef) p.push(`${at}: envFrom ${JSON.stringify(from)} is not a ConfigMap or a Secret`);
      if (SERVICES.includes(w.metadata.name) && c.name === w.metadata.name)
        for (const port of ports) if (!listened.has(port)) p.push(`${at}: containerPort ${port} has no *_LISTEN address set to it`);
    }
  return p;
}

// The policy must catch what it is for: mutated copies.
function negativeEnvSourceProblems(objs) {
  const p = [];
  const mutate = (svc, fn) => {
    const copy = structuredClone(objs);
    const d = named(copy, "Deployment", svc);
    fn(podSpecOf(d));
    return envSourceProblems(copy);
  };
  const main = (pod, svc) => pod.containers.find((c) => c.name === svc);
  if (!mutate("ingest-recorder", (pod) => main(pod, "ingest-recorder").env.push({ name: "INGEST_BUFFER_BYTES", value: "512MiB" })).some((m) => m.includes("INGEST_BUFFER_BYTES is the literal")))
    p.push("a literal INGEST_BUFFER_BYTES in ingest-recorder went unnoticed");
  if (!mutate("ingest-recorder", (pod) => (main(pod, "ingest-recorder").env.find((e) => e.name === "WS_LISTEN").value = "0.0.0.0:8082")).some((m) => m.includes("WS_LISTEN \"0.0.0.0:8082\"")))
    p.push("a WS_LISTEN port that is not the containerPort went unnoticed");
  if (!mutate("token-issuer", (pod) => (main(pod, "token-issuer").env = main(pod, "token-issuer").env.filter((e) => e.name !== "HTTP_LISTEN"))).some((m) => m.includes("containerPort 8080 has no")))
    p.push("a containerPort without its listen address went unnoticed");
  if (!mutate("chunk-store", (pod) => (pod.initContainers ?? [])[0]?.env.push({ name: "PGCONNECT_TIMEOUT", value: "5" })).some((m) => m.includes("wait-for-migrations: PGCONNECT_TIMEOUT is the literal")))
    p.push("a literal in an initContainer went unnoticed");
  if (!mutate("muxer", (pod) => main(pod, "muxer").env.push({ name: "MUXER_CONCURRENCY", valueFrom: { fieldRef: { fieldPath: "metadata.uid" } } })).some((m) => m.includes("MUXER_CONCURRENCY comes from fieldRef")))
    p.push("a fieldRef other than POD_NAME went unnoticed");
  return p;
}

// Settings that depend on the pod spec, resolved through the ConfigMaps:
// buffers below the memory limit, the muxer's work directory on its volume.
function settingsFitPodProblems(objs) {
  const p = [];
  const svcContainer = (svc) => {
    const d = named(objs, "Deployment", svc);
    return d && { d, pod: podSpecOf(d), c: podSpecOf(d).containers.find((x) => x.name === svc) };
  };
  const ir = svcContainer("ingest-recorder");
  if (ir) {
    const buf = bytesOf(envValue(objs, ir.c, "INGEST_BUFFER_BYTES") ?? "256MiB");
    if (!(buf < bytesOf(ir.c.resources?.limits?.memory)))
      p.push(`${describe(ir.d)}: INGEST_BUFFER_BYTES is not below the memory limit ${ir.c.resources?.limits?.memory}`);
  }
  const up = svcContainer("r2-uploader");
  const cs = svcContainer("chunk-store");
  if (up && cs) {
    const part = bytesOf(envValue(objs, cs.c, "UPLOAD_PART_SIZE") ?? "8MiB");
    const conc = Number(envValue(objs, up.c, "UPLOAD_CONCURRENCY") ?? 4);
    if (!(part * (conc + 1) < bytesOf(up.c.resources?.limits?.memory)))
      p.push(`${describe(up.d)}: UPLOAD_PART_SIZE x (UPLOAD_CONCURRENCY + 1) is not below the memory limit ${up.c.resources?.limits?.memory}`);
  }
  const mx = svcContainer("muxer");
  if (mx) {
    const dir = envValue(objs, mx.c, "MUXER_TMP_DIR") ?? "/tmp";
    const mount = (mx.c.volumeMounts ?? []).find((m) => m.mountPath === dir && !m.readOnly);
    if (!mount) p.push(`${describe(mx.d)}: MUXER_TMP_DIR ${dir} is not a writable volumeMount (the root filesystem is read-only)`);
  }
  return p;
}

// The probes against what /readyz does (libseashore/src/service.c): it
// runs the service's checks one after the other on the ops server's single
// thread: PostgreSQL with libpq's connect_timeout (pg.c), the bucket with
// S3_PROBE_TIMEOUT_MS (s3.c), NATS in memory. Readiness must wait longer
// than their sum, or a slow but working dependency marks the pod unready;
// liveness (/healthz) waits behind a /readyz in progress, so the same, and
// it stays lenient (3 failures or more, 30s or more before a restart).
function readinessTimeouts() {
  const pg = readFileSync(join(ROOT, "libseashore", "src", "pg.c"), "utf8");
  const s3 = readFileSync(join(ROOT, "libseashore", "src", "s3.c"), "utf8");
  const pgS = Number(pg.match(/"connect_timeout"[^;]*;\s*const char \*vals\[\] = \{[^,]+,\s*"(\d+)"/)?.[1]);
  const s3S = Number(s3.match(/#define S3_PROBE_TIMEOUT_MS (\d+)/)?.[1]) / 1000;
  if (!Number.isFinite(pgS) || !Number.isFinite(s3S)) throw new Error("cannot read the readiness checks' timeouts from libseashore/src/pg.c and s3.c");
  return { pgS, s3S };
}

function probeTimeoutProblems(objs, configs) {
  const { pgS, s3S } = readinessTimeouts();
  const p = [];
  for (const svc of SERVICES) {
    const d = named(objs, "Deployment", svc);
    const c = d && podSpecOf(d).containers.find((x) => x.name === svc);
    if (!c || !configs[svc]) continue;
    const reads = (n) => configs[svc].variables.some((v) => v.name === n);
    const need = (reads("DATABASE_URL") ? pgS : 0) + (reads("R2_ENDPOINT") ? s3S : 0);
    const floor = Math.max(need, pgS); // never at PostgreSQL's connect timeout or below (issue 8 audit)
    const r = c.readinessProbe ?? {};
    const l = c.livenessProbe ?? {};
    const rt = r.timeoutSeconds ?? 1;
    const lt = l.timeoutSeconds ?? 1;
    if (!(rt > floor)) p.push(`${describe(d)}: readinessProbe timeoutSeconds ${rt}, want > ${floor} (its /readyz checks take up to ${need}s; PostgreSQL's connect_timeout is ${pgS}s)`);
    if (!(lt > need)) p.push(`${describe(d)}: livenessProbe timeoutSeconds ${lt}, want > ${need} (it waits behind /readyz on the ops thread)`);
    const lf = l.failureThreshold ?? 3;
    if (lf < 3 || lf * (l.periodSeconds ?? 10) < 30) p.push(`${describe(d)}: livenessProbe restarts after ${lf} x ${l.periodSeconds ?? 10}s, want >= 3 failures and >= 30s`);
  }
  return p;
}

// ---- 4. configuration drift ----

// Every variable a container gets: name -> {source, optional}. source is
// "literal", "field", "configmap" or "secret". Problems for unresolvable refs.
function containerEnv(objs, where, c) {
  const vars = new Map();
  const problems = [];
  const set = (name, source, optional = false) => {
    if (vars.has(name)) problems.push(`${where}: ${name} is set twice`);
    vars.set(name, { source, optional });
  };
  const configMap = (name) => byKind(objs, "ConfigMap").find((m) => m.metadata.name === name);
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) {
      const cm = configMap(from.configMapRef.name);
      if (!cm) problems.push(`${where}: envFrom ConfigMap ${from.configMapRef.name} is not rendered`);
      for (const k of Object.keys(cm?.data ?? {})) set(`${from.prefix ?? ""}${k}`, "configmap", from.configMapRef.optional === true);
    } else if (from.secretRef) {
      const keys = SECRET_KEYS[from.secretRef.name];
      if (!keys) problems.push(`${where}: envFrom Secret ${from.secretRef.name} is not in the test's SECRET_KEYS table`);
      for (const k of keys ?? []) set(`${from.prefix ?? ""}${k}`, "secret", from.secretRef.optional === true);
    }
  }
  for (const e of c.env ?? []) {
    const ref = e.valueFrom ?? {};
    if (ref.configMapKeyRef) {
      const { name, key, optional } = ref.configMapKeyRef;
      if (!(key in (configMap(name)?.data ?? {})))
        problems.push(`${where}: ${e.name} refers to ConfigMap ${name} key ${key}, which is not rendered`);
      set(e.name, "configmap", optional === true);
    } else if (ref.secretKeyRef) {
      const { name, key, optional } = ref.secretKeyRef;
      if (!(SECRET_KEYS[name] ?? []).includes(key))
        problems.push(`${where}: ${e.name} refers to Secret ${name} key ${key}, not in the test's SECRET_KEYS table`);
      set(e.name, "secret", optional === true);
    } else if (ref.fieldRef || ref.resourceFieldRef) set(e.name, "field");
    else set(e.name, "literal");
  }
  return { vars, problems };
}

// The environment given to the service's container against what the binary reads.
function driftProblems(objs, config, containerOf) {
  const where = containerOf.where;
  const { vars, problems } = containerEnv(objs, where, containerOf.container);
  const known = new Map(config.variables.map((v) => [v.name, v]));
  for (const [name, { source }] of vars) {
    const v = known.get(name);
    if (!v) problems.push(`${where}: sets ${name}, which ${config.service} does not read`);
    else if (v.secret && source !== "secret") problems.push(`${where}: ${name} is secret but comes from a ${source}, not a Secret`);
  }
  for (const v of config.variables) {
    if (!v.required) continue;
    const got = vars.get(v.name);
    if (!got) problems.push(`${where}: required ${v.name} is not set`);
    else if (got.optional) problems.push(`${where}: required ${v.name} comes from an optional reference`);
  }
  return problems;
}

function serviceContainer(objs, svc) {
  const d = named(objs, "Deployment", svc);
  if (!d) throw new Error(`Deployment/${svc} is not rendered`);
  const c = podSpecOf(d).containers.find((x) => x.name === svc);
  if (!c) throw new Error(`Deployment/${svc}: no container named ${svc}`);
  return { where: `Deployment/${svc} container ${svc}`, container: c };
}

// The checker must catch what it is for: a negative control on a copy.
function negativeDriftProblems(objs, config) {
  const target = structuredClone(serviceContainer(objs, config.service));
  const problems = [];
  target.container.env = [...(target.container.env ?? []), { name: "SEASHORE_NOT_A_VARIABLE", value: "1" }];
  if (!driftProblems(objs, config, target).some((m) => m.includes("SEASHORE_NOT_A_VARIABLE")))
    problems.push("an unknown variable went unnoticed");
  const secretVar = config.variables.find((v) => v.secret);
  if (secretVar) {
    const leaked = structuredClone(serviceContainer(objs, config.service));
    leaked.container.envFrom = (leaked.container.envFrom ?? []).filter((f) => !(SECRET_KEYS[f.secretRef?.name] ?? []).includes(secretVar.name));
    leaked.container.env = [...(leaked.container.env ?? []).filter((e) => e.name !== secretVar.name), { name: secretVar.name, value: "x" }];
    if (!driftProblems(objs, config, leaked).some((m) => m.includes(`${secretVar.name} is secret`)))
      problems.push(`a literal ${secretVar.name} went unnoticed`);
  }
  const required = config.variables.find((v) => v.required && v.name === "NATS_URL");
  if (required) {
    const missing = structuredClone(serviceContainer(objs, config.service));
    missing.container.env = (missing.container.env ?? []).filter((e) => e.name !== "NATS_URL");
    missing.container.envFrom = (missing.container.envFrom ?? []).filter((f) => !f.configMapRef);
    if (!driftProblems(objs, config, missing).some((m) => m.includes("required NATS_URL")))
      problems.push("a missing NATS_URL went unnoticed");
  }
  return problems;
}

// ---- 5. Ingress, NetworkPolicies, monitoring ----

function ingressProblems(objs) {
  const routes = [];
  for (const ing of byKind(objs, "Ingress"))
    for (const rule of ing.spec.rules ?? [])
      for (const path of rule.http?.paths ?? []) routes.push({ ing, path: path.path, backend: path.backend.service });
  const p = [];
  const ingest = routes.find((r) => r.path === "/v1/ingest");
  if (!ingest) p.push("no Ingress routes /v1/ingest");
  else {
    const ann = ingest.ing.metadata.annotations ?? {};
    if (ingest.backend?.name !== "ingest-recorder") p.push(`${describe(ingest.ing)}: /v1/ingest goes to ${ingest.backend?.name}`);
    for (const k of ["proxy-read-timeout", "proxy-send-timeout"])
      if (!(Number(ann[`nginx.ingress.kubernetes.io/${k}`]) >= 3600)) p.push(`${describe(ingest.ing)}: annotation ${k} is not >= 3600`);
    if (ann["nginx.ingress.kubernetes.io/proxy-buffering"] !== "off") p.push(`${describe(ingest.ing)}: proxy-buffering is not off`);
    if (!ann["nginx.ingress.kubernetes.io/proxy-body-size"]) p.push(`${describe(ingest.ing)}: no proxy-body-size`);
  }
  const root = routes.find((r) => r.path === "/");
  if (!root || root.backend?.name !== "token-issuer") p.push("no Ingress routes / to token-issuer");
  for (const r of routes) {
    const svc = named(objs, "Service", r.backend?.name);
    if (!svc) p.push(`${describe(r.ing)}: backend Service ${r.backend?.name} is not rendered`);
    else if (!svc.spec.ports.some((port) => port.name === r.backend.port?.name || port.port === r.backend.port?.number))
      p.push(`${describe(r.ing)}: Service ${svc.metadata.name} has no port ${JSON.stringify(r.backend.port)}`);
  }
  return p;
}

function networkPolicyProblems(objs) {
  const nps = byKind(objs, "NetworkPolicy");
  const p = [];
  const isAll = (sel) => Object.keys(sel?.matchLabels ?? {}).length === 0 && (sel?.matchExpressions ?? []).length === 0;
  const deny = nps.find(
    (n) =>
      isAll(n.spec.podSelector) &&
      ["Ingress", "Egress"].every((t) => (n.spec.policyTypes ?? []).includes(t)) &&
      (n.spec.ingress ?? []).length === 0 &&
      (n.spec.egress ?? []).length === 0,
  );
  if (!deny) p.push("no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules)");
  const allowsPort = (n, dir, port) => (n.spec[dir] ?? []).some((r) => (r.ports ?? []).some((x) => x.port === port));
  const wanted = [
    ["egress", 53, "DNS"],
    ["egress", 4222, "services to NATS"],
    ["ingress", 4222, "NATS from the services"],
    ["ingress", 6222, "NATS routes"],
    ["egress", 5432, "PostgreSQL"],
    ["egress", 443, "the S3 endpoint"],
    ["ingress", 8080, "the ingress controller to token-issuer"],
    ["ingress", 8081, "the ingress controller to ingest-recorder"],
    ["ingress", 9090, "Prometheus to the ops ports"],
    ["ingress", 8222, "KEDA to the NATS monitoring port"],
  ];
  for (const [dir, port, what] of wanted) if (!nps.some((n) => allowsPort(n, dir, port))) p.push(`no NetworkPolicy allows ${what} (${dir} port ${port})`);
  return p;
}

function monitoringProblems(objs) {
  const p = [];
  for (const name of [...SERVICES, "nats"]) {
    const sm = named(objs, "ServiceMonitor", name);
    if (!sm) {
      p.push(`no ServiceMonitor/${name}`);
      continue;
    }
    const ports = sm.spec.endpoints.map((e) => e.port);
    const svc = byKind(objs, "Service").find((s) => selectorMatches(sm.spec.selector, s.metadata.labels ?? {}) && s.spec.ports.some((x) => ports.includes(x.name)));
    if (!svc) p.push(`${describe(sm)}: selects no Service with port ${ports.join(",")}`);
  }
  return p;
}

// ---- 6. topology, NATS storage and memory, the migrations gate, KEDA, images ----

// Every Deployment spreads its pods over zones and hosts; NATS one per host.
function topologyProblems(objs) {
  const p = [];
  for (const w of workloads(objs)) {
    const labels = podLabelsOf(w);
    const tsc = podSpecOf(w).topologySpreadConstraints ?? [];
    const on = (key) => tsc.find((t) => t.topologyKey === key && selectorMatches(t.labelSelector, labels));
    for (const key of ["topology.kubernetes.io/zone", "kubernetes.io/hostname"])
      if (!on(key)) p.push(`${describe(w)}: no topologySpreadConstraint on ${key} selecting its own pods`);
    if (w.kind === "StatefulSet" && on("kubernetes.io/hostname")?.whenUnsatisfiable !== "DoNotSchedule")
      p.push(`${describe(w)}: NATS nodes may share a host (hostname spread is not DoNotSchedule)`);
  }
  return p;
}

// Kubernetes quantities and NATS sizes in bytes ("10Gi", "8GB", "1600MiB").
function bytesOf(text) {
  const m = String(text).match(/^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|[kmgt]b?)?$/);
  if (!m) return NaN;
  const unit = (m[2] ?? "").replace(/B$/i, "").toUpperCase();
  const pow = { "": 0, K: 1, M: 2, G: 3, T: 4 }[unit.replace("I", "")];
  return Number(m[1]) * (unit.endsWith("I") ? 1024 : 1000) ** pow;
}

// JetStream's files are on a PVC per node (volumeClaimTemplates, mounted at
// nats.conf's store_dir, big enough for max_file_store); memory above the
// measurement in production, GOMEMLIMIT below the limit.
function natsStorageProblems(objs, overlay) {
  const nats = named(objs, "StatefulSet", "nats");
  if (!nats) return ["StatefulSet/nats is missing"];
  const p = [];
  const conf = natsConfig(objs);
  const storeDir = conf.match(/^\s*store_dir:\s*"?([^"\s]+)/m)?.[1];
  const maxFile = bytesOf(conf.match(/^\s*max_file_store:\s*"?([^"\s]+)/m)?.[1]);
  if (!storeDir) p.push("nats.conf: no jetstream store_dir");
  const c = podSpecOf(nats).containers.find((x) => x.name === "nats");
  const mount = (c?.volumeMounts ?? []).find((m) => m.mountPath === storeDir);
  const vct = (nats.spec.volumeClaimTemplates ?? []).find((v) => v.metadata.name === mount?.name);
  if (!vct) p.push(`${describe(nats)}: store_dir ${storeDir} is not on a volumeClaimTemplate (a persistent volume per node)`);
  else {
    const size = bytesOf(vct.spec.resources?.requests?.storage);
    if (!(size > maxFile)) p.push(`${describe(nats)}: PVC ${vct.spec.resources?.requests?.storage} is not above max_file_store`);
    if (!(vct.spec.accessModes ?? []).includes("ReadWriteOnce")) p.push(`${describe(nats)}: PVC is not ReadWriteOnce`);
  }
  const limit = bytesOf(c?.resources?.limits?.memory);
  const request = bytesOf(c?.resources?.requests?.memory);
  const gomem = bytesOf(envValue(objs, c, "GOMEMLIMIT"));
  if (!(gomem < limit)) p.push(`${describe(nats)}: GOMEMLIMIT is not below the memory limit`);
  if (overlay === "production") {
    const measured = NATS_MEASURED_200_MIB * 1024 * 1024;
    if (!(request > measured && limit > measured))
      p.push(`${describe(nats)}: memory ${c?.resources?.requests?.memory}/${c?.resources?.limits?.memory} is not above the measured ${NATS_MEASURED_200_MIB} MiB at 200 recorders`);
  }
  return p;
}

// The migrate Job runs seashore-migrate; every Deployment whose service
// reads DATABASE_URL waits in an initContainer, with the Job's image, for
// none of its migrations to be pending.
function migrationsGateProblems(objs, configs) {
  const p = [];
  const job = named(objs, "Job", "seashore-migrate");
  const jc = job && podSpecOf(job).containers[0];
  if (!jc) return ["Job/seashore-migrate is not rendered"];
  const jobCmd = [...(jc.command ?? []), ...(jc.args ?? [])];
  if (jobCmd[0] !== "seashore-migrate" || jobCmd.includes("--status")) p.push(`${describe(job)}: does not apply migrations: ${jobCmd.join(" ")}`);
  const dir = jobCmd[jobCmd.indexOf("--dir") + 1];
  for (const svc of SERVICES) {
    const d = named(objs, "Deployment", svc);
    if (!d || !configs[svc]) continue;
    const usesPg = configs[svc].variables.some((v) => v.name === "DATABASE_URL");
    const gate = (podSpecOf(d).initContainers ?? []).find((c) => c.name === "wait-for-migrations");
    if (!usesPg) {
      if (gate) p.push(`${describe(d)}: waits for migrations but does not use PostgreSQL`);
      continue;
    }
    if (!gate) {
      p.push(`${describe(d)}: no wait-for-migrations initContainer (it would start on an old schema)`);
      continue;
    }
    if (gate.image !== jc.image) p.push(`${describe(d)}: wait-for-migrations runs ${gate.image}, the Job ${jc.image}`);
    const script = [...(gate.command ?? []), ...(gate.args ?? [])].join(" ");
    for (const want of ["seashore-migrate", "--status", `--dir ${dir}`, "^pending", "until "])
      if (!script.includes(want)) p.push(`${describe(d)}: wait-for-migrations does not contain "${want}"`);
  }
  return p;
}

// KEDA asks NATS's monitoring port at <service>.<namespace>.svc...: the
// namespace the overlay renders into, a rendered Service with that port.
function kedaEndpointProblems(objs) {
  const p = [];
  for (const so of byKind(objs, "ScaledObject"))
    for (const t of so.spec.triggers.filter((x) => x.type === "nats-jetstream")) {
      const ep = t.metadata?.natsServerMonitoringEndpoint ?? "";
      const m = ep.match(/^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)$/);
      if (!m) {
        p.push(`${describe(so)}: endpoint "${ep}" is not <service>.<namespace>.svc[.cluster.local]:<port>`);
        continue;
      }
      const [, svcName, ns, port] = m;
      if (ns !== (so.metadata.namespace ?? "default")) p.push(`${describe(so)}: endpoint namespace ${ns}, but the overlay renders into ${so.metadata.namespace}`);
      const svc = named(objs, "Service", svcName);
      if (!svc) p.push(`${describe(so)}: endpoint Service ${svcName} is not rendered`);
      else if (!svc.spec.ports.some((x) => x.port === Number(port))) p.push(`${describe(so)}: Service ${svcName} has no port ${port}`);
    }
  return p;
}

// Production pins one release of the six images (never latest); a latest
// image anywhere must not be kept from a node's cache.
function imageProblems(objs, overlay) {
  const p = [];
  const refs = new Set();
  for (const w of [...workloads(objs), ...byKind(objs, "Job")])
    for (const c of allContainers(podSpecOf(w))) {
      const m = c.image.match(SEASHORE_IMAGE);
      if (!m) continue;
      const [, , tag, digest] = m;
      refs.add(digest ? `@${digest}` : `:${tag ?? "latest"}`);
      if ((tag ?? "latest") === "latest" && !digest && ["IfNotPresent", "Never"].includes(c.imagePullPolicy))
        p.push(`${describe(w)} container ${c.name}: ${c.image} with imagePullPolicy ${c.imagePullPolicy} (a cached latest is never updated)`);
      if (overlay === "production" && !digest && (tag ?? "latest") === "latest") p.push(`${describe(w)} container ${c.name}: ${c.image} is not pinned`);
    }
  if (overlay === "production" && refs.size !== 1) p.push(`the six images are not one release: ${[...refs].join(", ")}`);
  return p;
}

// kube-prometheus-stack's Prometheus selects ServiceMonitors by `release`.
function serviceMonitorLabelProblems(objs) {
  const sms = byKind(objs, "ServiceMonitor");
  const values = new Set(sms.map((s) => s.metadata.labels?.release));
  const p = sms.filter((s) => !s.metadata.labels?.release).map((s) => `${describe(s)}: no release label (kube-prometheus-stack would not scrape it)`);
  if (values.size > 1) p.push(`the ServiceMonitors disagree on the release label: ${[...values].join(", ")}`);
  return p;
}

// ---- 7. NetworkPolicy flows ----
//
// A small evaluator of NetworkPolicy semantics: a pod is isolated in a
// direction once a policy of its namespace selects it for that direction;
// then a connection needs a rule whose peers and ports match. A connection
// between two pods needs the source's egress and the target's ingress. Peers
// outside the namespace (the ingress controller, Prometheus, KEDA, DNS,
// strangers) are not isolated by our policies; external addresses (PostgreSQL,
// S3, the internet) are matched by ipBlocks, pods are not (their addresses
// are the cluster's business).

function ipInCidr(ip, cidr) {
  const toInt = (a) => a.split(".").reduce((n, o) => n * 256 + Number(o), 0);
  const [base, bits] = cidr.split("/");
  const size = 2 ** (32 - Number(bits));
  return Math.floor(toInt(ip) / size) === Math.floor(toInt(base) / size);
}

function peerMatches(entry, peer, policyNs) {
  if (entry.ipBlock) return !!peer.ip && ipInCidr(peer.ip, entry.ipBlock.cidr) && !(entry.ipBlock.except ?? []).some((c) => ipInCidr(peer.ip, c));
  if (peer.ip) return false;
  const nsLabels = { "kubernetes.io/metadata.name": peer.ns };
  if (entry.namespaceSelector && !selectorMatches(entry.namespaceSelector, nsLabels)) return false;
  if (!entry.namespaceSelector && peer.ns !== policyNs) return false;
  return entry.podSelector ? selectorMatches(entry.podSelector, peer.labels) : true;
}

function portMatches(ports, port, protocol) {
  if (!ports || ports.length === 0) return true;
  return ports.some((x) => (x.protocol ?? "TCP") === protocol && (x.port === undefined || (port >= x.port && port <= (x.endPort ?? x.port))));
}

// Whether our policies let `pod` (ours) take (Ingress) or make (Egress) the connection with `peer`.
function policyAllows(nps, dir, pod, peer, port, protocol) {
  const key = dir === "Ingress" ? "ingress" : "egress";
  const selecting = nps.filter(
    (n) =>
      (n.metadata.namespace ?? "default") === pod.ns &&
      selectorMatches(n.spec.podSelector, pod.labels) &&
      (n.spec.policyTypes ?? (n.spec.egress ? ["Ingress", "Egress"] : ["Ingress"])).includes(dir),
  );
  if (selecting.length === 0) return true;
  return selecting.some((n) =>
    (n.spec[key] ?? []).some((rule) => {
      const peers = rule[dir === "Ingress" ? "from" : "to"] ?? [];
      return (peers.length === 0 || peers.some((e) => peerMatches(e, peer, pod.ns))) && portMatches(rule.ports, port, protocol);
    }),
  );
}

function reachable(nps, src, dst, port, protocol = "TCP") {
  const out = src.ours ? policyAllows(nps, "Egress", src, dst, port, protocol) : true;
  const inn = dst.ours ? policyAllows(nps, "Ingress", dst, src, port, protocol) : true;
  return out && inn;
}

function flowProblems(objs) {
  const nps = byKind(objs, "NetworkPolicy");
  const ns = named(objs, "Deployment", "token-issuer")?.metadata.namespace ?? "default";
  const pods = {};
  for (const w of [...workloads(objs), ...byKind(objs, "Job")])
    pods[w.metadata.name] = { name: w.metadata.name, ns, labels: podLabelsOf(w), ours: true };
  const ext = (name, nsName, labels) => ({ name, ns: nsName, labels, ours: false });
  const ingressCtl = ext("ingress-nginx controller", "ingress-nginx", { "app.kubernetes.io/name": "ingress-nginx" });
  const prometheus = ext("Prometheus", "monitoring", { "app.kubernetes.io/name": "prometheus" });
  const keda = ext("KEDA operator", "keda", { app: "keda-operator" });
  const dns = ext("kube-dns", "kube-system", { "k8s-app": "kube-dns" });
  const stranger = ext("a pod in namespace default", "default", { app: "stranger" });
  const neighbour = ext(`a stranger pod in ${ns}`, ns, { app: "stranger" });
  const pg = { name: "PostgreSQL 10.20.30.40", ip: "10.20.30.40", ours: false };
  const s3 = { name: "S3 endpoint 104.18.8.1", ip: "104.18.8.1", ours: false };
  const internet = { name: "an internet address 8.8.8.8", ip: "8.8.8.8", ours: false };
  const p = [];
  const expect = (want, src, dst, port, protocol = "TCP") => {
    if (!src || !dst) return p.push(`flow ${src?.name} -> ${dst?.name}: a workload is not rendered`);
    if (reachable(nps, src, dst, port, protocol) !== want)
      p.push(`${src.name} -> ${dst.name}:${port}/${protocol} is ${want ? "blocked" : "allowed"}, want ${want ? "allowed" : "blocked"}`);
  };
  const services = SERVICES.map((s) => pods[s]);
  const all = Object.values(pods);
  const usesPg = ["token-issuer", "chunk-store", "r2-uploader", "muxer", "seashore-migrate"];
  const usesS3 = ["token-issuer", "r2-uploader", "muxer"]; // SS_NEEDS_S3 in their main.c
  // The ingress controller reaches the two public ports and nothing else.
  expect(true, ingressCtl, pods["token-issuer"], 8080);
  expect(true, ingressCtl, pods["ingest-recorder"], 8081);
  expect(false, ingressCtl, pods["token-issuer"], 9090);
  expect(false, ingressCtl, pods["chunk-store"], 9090);
  expect(false, ingressCtl, pods.nats, 4222);
  // Nobody else reaches them.
  for (const who of [stranger, neighbour, ...services.filter((s) => s.name !== "token-issuer")]) expect(false, who, pods["token-issuer"], 8080);
  for (const who of [stranger, neighbour, ...services.filter((s) => s.name !== "ingest-recorder")]) expect(false, who, pods["ingest-recorder"], 8081);
  // Prometheus scrapes every ops port and the NATS exporter; strangers do not.
  for (const s of services) {
    expect(true, prometheus, s, 9090);
    expect(false, stranger, s, 9090);
  }
  expect(true, prometheus, pods.nats, 7777);
  // NATS: every service, the routes between the nodes, KEDA on 8222.
  for (const s of services) expect(true, s, pods.nats, 4222);
  for (const who of [stranger, neighbour, pods["seashore-migrate"], ingressCtl]) expect(false, who, pods.nats, 4222);
  expect(true, pods.nats, pods.nats, 6222);
  expect(false, pods["chunk-store"], pods.nats, 6222);
  expect(true, keda, pods.nats, 8222);
  expect(false, stranger, pods.nats, 8222);
  // DNS for every pod.
  for (const w of all) {
    expect(true, w, dns, 53, "UDP");
    expect(true, w, dns, 53, "TCP");
  }
  // PostgreSQL and S3: exactly the ones that use them.
  for (const w of all) {
    expect(usesPg.includes(w.name), w, pg, 5432);
    expect(usesS3.includes(w.name), w, s3, 443);
    expect(false, w, internet, 80);
    expect(false, w, s3, 80);
  }
  // Services talk over NATS only: no service-to-service HTTP.
  for (const a of services) for (const b of services) if (a !== b) expect(false, a, b, b.name === "ingest-recorder" ? 8081 : b.name === "token-issuer" ? 8080 : 9090);
  // No allow-all: an odd port from anywhere, to anywhere, stays blocked.
  for (const w of all) {
    expect(false, stranger, w, 12345);
    expect(false, neighbour, w, 12345);
    expect(false, w, internet, 12345);
    expect(false, w, neighbour, 12345);
  }
  return p;
}

// The flow check must catch what it is for: mutated copies of the policies.
function negativeFlowProblems(objs) {
  const p = [];
  const ns = named(objs, "Deployment", "token-issuer")?.metadata.namespace;
  const allowAll = structuredClone(objs);
  allowAll.push({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "allow-all", namespace: ns },
    spec: { podSelector: {}, policyTypes: ["Ingress"], ingress: [{}] },
  });
  if (!flowProblems(allowAll).some((m) => m.startsWith("a pod in namespace default -> token-issuer:8080/TCP is allowed")))
    p.push("an allow-all ingress policy went unnoticed");
  const noMuxerS3 = structuredClone(objs);
  const s3 = noMuxerS3.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "s3-egress");
  for (const e of s3?.spec.podSelector.matchExpressions ?? []) e.values = e.values.filter((v) => v !== "muxer");
  if (!flowProblems(noMuxerS3).some((m) => m.startsWith("muxer -> S3 endpoint 104.18.8.1:443/TCP is blocked")))
    p.push("muxer dropped from s3-egress went unnoticed");
  const noUploaderNats = structuredClone(objs);
  const toNats = noUploaderNats.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "services-to-nats");
  for (const e of toNats?.spec.podSelector.matchExpressions ?? []) e.values = e.values.filter((v) => v !== "r2-uploader");
  if (!flowProblems(noUploaderNats).some((m) => m.startsWith("r2-uploader -> nats:4222/TCP is blocked")))
    p.push("r2-uploader dropped from services-to-nats went unnoticed");
  return p;
}

// ---- 8. drift of the migrations runner (the Job and the initContainers) ----

// What tools/migrate/migrate.c reads: its getenv() calls. DATABASE_URL is
// required (it exits 2 without) and secret, as the services declare it.
function migrateConfig(configs) {
  const src = readFileSync(join(ROOT, "tools", "migrate", "migrate.c"), "utf8");
  const names = [...new Set([...src.matchAll(/getenv\("([A-Z_]+)"\)/g)].map((m) => m[1]))];
  const secret = Object.values(configs).some((c) => c.variables.some((v) => v.name === "DATABASE_URL" && v.secret));
  return {
    service: "seashore-migrate",
    variables: names.map((name) => ({ name, required: name === "DATABASE_URL", secret: name === "DATABASE_URL" && secret })),
  };
}

function migrateContainers(objs) {
  const out = [];
  for (const w of [...workloads(objs), ...byKind(objs, "Job")])
    for (const c of allContainers(podSpecOf(w)))
      if (/\/migrate[:@]/.test(c.image) || /^ghcr\.io\/seashore\/migrate$/.test(c.image)) out.push({ where: `${describe(w)} container ${c.name}`, container: c });
  return out;
}

// ---- main ----

function main() {
  const buildDir = process.argv[2];
  if (!buildDir) {
    console.log("not ok - usage: node tests/deploy/manifests.test.mjs <build-dir>");
    process.exit(2);
  }
  const kubectl = findKubectl();
  if (!kubectl) {
    console.log("not ok - kubectl is not on PATH (Debian: apt-get install kubernetes-client)");
    process.exit(1);
  }

  check("schema validation rejects a bad Deployment, an unknown kind, a bad ScaledObject and an unknown field", negativeSchemaProblems);

  const configs = {};
  check("every service prints --config-json", () => {
    for (const svc of SERVICES) configs[svc] = serviceConfig(resolve(buildDir), svc);
    return [];
  });

  for (const overlay of OVERLAYS) {
    const dir = join(ROOT, "deploy", "k8s", "overlays", overlay);
    let objs = null;
    check(`${overlay}: kubectl kustomize renders deploy/k8s/overlays/${overlay}`, () => {
      objs = renderOverlay(kubectl, dir);
      return objs.length === 0 ? ["rendered nothing"] : [];
    });
    if (!objs) continue;

    check(`${overlay}: ${objs.length} objects validate against their schemas`, () => schemaProblems(objs));
    check(`${overlay}: schema validation rejects rendered objects with a misspelt field`, () => negativeRenderedSchemaProblems(objs));
    check(`${overlay}: every Deployment and the StatefulSet is hardened, probed, sized`, () =>
      [...workloads(objs), ...byKind(objs, "Job")].flatMap(podProblems),
    );
    check(`${overlay}: a PodDisruptionBudget selects every Deployment and the StatefulSet`, () =>
      workloads(objs).flatMap((w) => pdbProblems(objs, w)),
    );
    check(`${overlay}: each service has ops probes, DRAIN_TIMEOUT only where used, a preStop sleep behind the Ingress, grace for both`, () =>
      SERVICES.map((s) => named(objs, "Deployment", s))
        .map((d, i) => d ?? { missing: SERVICES[i] })
        .flatMap((d) => (d.missing ? [`Deployment/${d.missing} is not rendered`] : serviceProbeAndDrainProblems(objs, d))),
    );
    check(`${overlay}: the drain check catches a missing preStop, an unused DRAIN_TIMEOUT, a short grace`, () => negativeDrainProblems(objs));
    check(`${overlay}: every env var of every container comes from a ConfigMap or Secret (listen addresses excepted, on a containerPort)`, () => envSourceProblems(objs));
    check(`${overlay}: the env-source check catches a literal setting, a wrong listen port, a port without its address, an initContainer literal, a stray fieldRef`, () =>
      negativeEnvSourceProblems(objs),
    );
    check(`${overlay}: settings from the ConfigMaps fit the pods (buffers under memory limits, MUXER_TMP_DIR on a volume)`, () => settingsFitPodProblems(objs));
    check(`${overlay}: probe timeouts above what /readyz waits for (PostgreSQL connect, S3 HEAD); liveness lenient`, () => probeTimeoutProblems(objs, configs));
    check(`${overlay}: every Deployment and NATS spread over zones and hosts`, () => topologyProblems(objs));
    check(`${overlay}: NATS keeps JetStream on a PVC per node; memory sized`, () => natsStorageProblems(objs, overlay));
    check(`${overlay}: the migrate Job, and a wait-for-migrations gate on every Deployment using PostgreSQL`, () => migrationsGateProblems(objs, configs));
    check(`${overlay}: KEDA's NATS endpoint is in the overlay's namespace`, () => kedaEndpointProblems(objs));
    check(`${overlay}: images: one pinned release in production, no cached latest`, () => imageProblems(objs, overlay));
    check(`${overlay}: replicas, NATS nodes and stream replicas fit the overlay`, () => haProblems(objs, overlay));
    check(`${overlay}: HPAs and KEDA ScaledObjects`, () => scalingProblems(objs));
    for (const svc of SERVICES) {
      if (!configs[svc]) continue;
      check(`${overlay}: ${svc}'s environment matches its --config-json (secrets from Secrets)`, () =>
        driftProblems(objs, configs[svc], serviceContainer(objs, svc)),
      );
    }
    if (Object.keys(configs).length > 0) {
      const mc = migrateConfig(configs);
      check(`${overlay}: the migrate Job's and initContainers' environment matches what seashore-migrate reads`, () => {
        const targets = migrateContainers(objs);
        const p = targets.length === 0 ? ["no container runs the migrate image"] : [];
        return [...p, ...targets.flatMap((t) => driftProblems(objs, mc, t))];
      });
      check(`${overlay}: the migrate drift check catches an unknown and a missing variable`, () => {
        const [t] = migrateContainers(objs);
        const p = [];
        const extra = structuredClone(t);
        extra.container.env = [...(extra.container.env ?? []), { name: "MIGRATIONS_TABLE", value: "x" }];
        if (!driftProblems(objs, mc, extra).some((m) => m.includes("MIGRATIONS_TABLE"))) p.push("an unknown variable went unnoticed");
        const missing = structuredClone(t);
        missing.container.env = (missing.container.env ?? []).filter((e) => e.name !== "DATABASE_URL");
        if (!driftProblems(objs, mc, missing).some((m) => m.includes("required DATABASE_URL"))) p.push("a missing DATABASE_URL went unnoticed");
        return p;
      });
    }
    check(`${overlay}: the drift check catches unknown, leaked and missing variables`, () =>
      SERVICES.filter((s) => configs[s]).flatMap((s) => negativeDriftProblems(objs, configs[s])),
    );
    check(`${overlay}: Ingress routes / and /v1/ingest (websocket timeouts)`, () => ingressProblems(objs));
    check(`${overlay}: NetworkPolicies: default deny and the needed flows`, () => networkPolicyProblems(objs));
    check(`${overlay}: NetworkPolicies allow exactly the flows Sea Shore needs (evaluated pod to pod)`, () => flowProblems(objs));
    check(`${overlay}: the flow check catches an allow-all policy and a service dropped from a policy`, () => negativeFlowProblems(objs));
    check(`${overlay}: a ServiceMonitor for each service and NATS`, () => monitoringProblems(objs));
    check(`${overlay}: every ServiceMonitor carries kube-prometheus-stack's release label`, () => serviceMonitorLabelProblems(objs));
  }

  console.log(failures === 0 ? "# all passed" : `# ${failures} failed`);
  process.exit(failures === 0 ? 0 : 1);
}

main();
