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
  return problems;
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

// The service's ops probes and the grace period above its DRAIN_TIMEOUT.
function serviceProbeAndDrainProblems(obj) {
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
  const drain = (c.env ?? []).find((e) => e.name === "DRAIN_TIMEOUT");
  if (!drain || drain.value === undefined) return [...p, `${where}: DRAIN_TIMEOUT is not set to a literal value`];
  const seconds = durationSeconds(drain.value);
  const grace = pod.terminationGracePeriodSeconds;
  if (!Number.isFinite(seconds)) p.push(`${where}: DRAIN_TIMEOUT "${drain.value}" is not a duration`);
  else if (!(grace > seconds)) p.push(`${where}: terminationGracePeriodSeconds ${grace} is not above DRAIN_TIMEOUT ${drain.value}`);
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

  check("schema validation rejects a bad Deployment, an unknown kind and a bad ScaledObject", negativeSchemaProblems);

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
    check(`${overlay}: every Deployment and the StatefulSet is hardened, probed, sized`, () =>
      [...workloads(objs), ...byKind(objs, "Job")].flatMap(podProblems),
    );
    check(`${overlay}: a PodDisruptionBudget selects every Deployment and the StatefulSet`, () =>
      workloads(objs).flatMap((w) => pdbProblems(objs, w)),
    );
    check(`${overlay}: each service has ops probes and a grace period above DRAIN_TIMEOUT`, () =>
      SERVICES.map((s) => named(objs, "Deployment", s))
        .map((d, i) => d ?? { missing: SERVICES[i] })
        .flatMap((d) => (d.missing ? [`Deployment/${d.missing} is not rendered`] : serviceProbeAndDrainProblems(d))),
    );
    check(`${overlay}: replicas, NATS nodes and stream replicas fit the overlay`, () => haProblems(objs, overlay));
    check(`${overlay}: HPAs and KEDA ScaledObjects`, () => scalingProblems(objs));
    for (const svc of SERVICES) {
      if (!configs[svc]) continue;
      check(`${overlay}: ${svc}'s environment matches its --config-json (secrets from Secrets)`, () =>
        driftProblems(objs, configs[svc], serviceContainer(objs, svc)),
      );
    }
    check(`${overlay}: the drift check catches unknown, leaked and missing variables`, () =>
      SERVICES.filter((s) => configs[s]).flatMap((s) => negativeDriftProblems(objs, configs[s])),
    );
    check(`${overlay}: Ingress routes / and /v1/ingest (websocket timeouts)`, () => ingressProblems(objs));
    check(`${overlay}: NetworkPolicies: default deny and the needed flows`, () => networkPolicyProblems(objs));
    check(`${overlay}: a ServiceMonitor for each service and NATS`, () => monitoringProblems(objs));
  }

  console.log(failures === 0 ? "# all passed" : `# ${failures} failed`);
  process.exit(failures === 0 ? 0 : 1);
}

main();
