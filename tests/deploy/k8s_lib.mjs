// k8s_lib.mjs -- helpers of tests/deploy/manifests.test.mjs: render a
// kustomize overlay offline, validate objects against the Kubernetes, KEDA
// and Prometheus-operator schemas, and small accessors for the checks.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

import * as apps from "kubernetes-models/apps/v1";
import * as autoscaling from "kubernetes-models/autoscaling/v2";
import * as batch from "kubernetes-models/batch/v1";
import * as core from "kubernetes-models/v1";
import * as networking from "kubernetes-models/networking.k8s.io/v1";
import * as policy from "kubernetes-models/policy/v1";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

// apiVersion/kind -> model class. Anything else is an unknown kind.
const MODELS = {
  "v1/ConfigMap": core.ConfigMap,
  "v1/Service": core.Service,
  "v1/Secret": core.Secret,
  "apps/v1/Deployment": apps.Deployment,
  "apps/v1/StatefulSet": apps.StatefulSet,
  "batch/v1/Job": batch.Job,
  "policy/v1/PodDisruptionBudget": policy.PodDisruptionBudget,
  "autoscaling/v2/HorizontalPodAutoscaler": autoscaling.HorizontalPodAutoscaler,
  "networking.k8s.io/v1/Ingress": networking.Ingress,
  "networking.k8s.io/v1/NetworkPolicy": networking.NetworkPolicy,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

export const describe = (obj) => `${obj?.kind ?? "?"}/${obj?.metadata?.name ?? "?"}`;

// The first kubectl on PATH, or null.
export function findKubectl() {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir || ".", "kubectl");
    if (dir && existsSync(candidate)) return candidate;
  }
  return null;
}

// Objects of `kubectl kustomize <dir>`. The YAML is turned into JSON by
// kubectl itself, offline (`annotate --local` removing an annotation that is
// not there changes nothing), so the test needs no YAML library and reads
// exactly what kubectl would send. No cluster is contacted.
export function renderOverlay(kubectl, dir) {
  const home = mkdtempSync(join(tmpdir(), "seashore-k8s-"));
  const env = { ...process.env, KUBECONFIG: join(home, "no-kubeconfig") };
  try {
    const run = (args, input) =>
      execFileSync(kubectl, args, { input, env, encoding: "utf8", maxBuffer: 64 << 20, stdio: ["pipe", "pipe", "pipe"] });
    const yaml = run(["kustomize", dir]);
    const json = run(["annotate", "--local", "-f", "-", "-o", "json", "seashore.io/render-check-"], yaml);
    return parseJsonStream(json).map(dropEmptyAnnotations);
  } catch (err) {
    const stderr = err.stderr ? String(err.stderr).trim() : err.message;
    throw new Error(`kubectl could not render ${dir}: ${stderr}`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

// kubectl prints one pretty-printed JSON document per object; each ends with
// a "}" alone at column 0.
function parseJsonStream(text) {
  const docs = text.split(/^}$/m).filter((s) => s.trim() !== "");
  const objects = docs.map((s) => JSON.parse(`${s}}`));
  return objects.flatMap((o) => (o.kind === "List" ? o.items : [o]));
}

function dropEmptyAnnotations(obj) {
  const ann = obj.metadata?.annotations;
  if (ann && Object.keys(ann).length === 0) delete obj.metadata.annotations;
  return obj;
}

// null when the object is valid, else a message naming it and the problem.
// Valid means the schema's types and required fields hold AND every field is
// one the schema knows: the schemas (like the API server's OpenAPI) do not
// say additionalProperties: false, so a misspelt field (readinesProbe) would
// pass the model's validate() and be dropped by the API server in silence.
export function validateObject(obj) {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) return `${describe(obj)}: unknown kind ${obj.apiVersion}/${obj.kind} (no schema in the test)`;
  try {
    new Model(obj).validate();
  } catch (err) {
    return `${describe(obj)}: ${err.message}`;
  }
  const unknown = unknownFields(Model, obj);
  return unknown.length === 0 ? null : `${describe(obj)}: field(s) not in the schema: ${unknown.join(", ")}`;
}

// The paths of obj's fields that Model's compiled schema validator never
// looks at. The validator (ajv, compiled) reads every property its schema
// declares (`data.readinessProbe`) and enumerates the keys of maps (labels,
// resources.limits); run over a Proxy that records both, the keys left
// unread are the ones the schema does not know. Reported at the outermost
// unknown key, not below it.
export function unknownFields(Model, obj) {
  const read = new WeakMap();
  const proxies = new WeakMap();
  const mark = (target, key) => {
    if (typeof key !== "string") return;
    if (!read.has(target)) read.set(target, new Set());
    read.get(target).add(key);
  };
  const wrap = (value) => {
    if (!value || typeof value !== "object") return value;
    if (!proxies.has(value))
      proxies.set(
        value,
        new Proxy(value, {
          get(t, k, r) {
            mark(t, k);
            return wrap(Reflect.get(t, k, r));
          },
          has(t, k) {
            mark(t, k);
            return Reflect.has(t, k);
          },
          ownKeys(t) {
            for (const k of Reflect.ownKeys(t)) mark(t, k);
            return Reflect.ownKeys(t);
          },
        }),
      );
    return proxies.get(value);
  };
  const plain = JSON.parse(JSON.stringify(obj));
  try {
    Model.prototype.validate.call(wrap(plain)); // validate() runs the schema over `this`
  } catch {
    return []; // invalid: validateObject reported it already
  }
  const unknown = [];
  const walk = (value, path) => {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${path}[${i}]`));
    else if (value && typeof value === "object")
      for (const k of Object.keys(value)) {
        if (read.get(value)?.has(k)) walk(value[k], `${path}.${k}`);
        else unknown.push(`${path}.${k}`.replace(/^\./, ""));
      }
  };
  walk(plain, "");
  return unknown;
}

// The pod template's spec of a workload, or null.
export function podSpecOf(obj) {
  return obj.spec?.template?.spec ?? null;
}

export function podLabelsOf(obj) {
  return obj.spec?.template?.metadata?.labels ?? {};
}

// A LabelSelector (matchLabels and matchExpressions) against labels.
export function selectorMatches(selector, labels) {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    if (e.operator === "In" && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === "NotIn" && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}

// Go-style duration ("25s", "1m30s", "2m") in seconds; NaN if malformed.
export function durationSeconds(text) {
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600 };
  const parts = String(text).match(/^(\d+(?:\.\d+)?(ms|s|m|h))+$/) ? String(text).match(/\d+(?:\.\d+)?(ms|s|m|h)/g) : null;
  if (!parts) return NaN;
  return parts.reduce((sum, p) => {
    const [, n, u] = p.match(/^(\d+(?:\.\d+)?)(ms|s|m|h)$/);
    return sum + Number(n) * unit[u];
  }, 0);
}

// `<build>/services/<svc>/<svc> --config-json`: {service, variables: [...]}.
export function serviceConfig(buildDir, service) {
  const bin = join(buildDir, "services", service, service);
  if (!existsSync(bin)) throw new Error(`${bin} is missing (build the services first)`);
  return JSON.parse(execFileSync(bin, ["--config-json"], { encoding: "utf8" }));
}
