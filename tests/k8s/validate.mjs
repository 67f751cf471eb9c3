// Validates every object infra/k8s produces against the real Kubernetes and KEDA schemas
// (kubernetes-models, @kubernetes-models/keda: the OpenAPI schemas with ajv), and checks what the
// manifests promise: the vllm overlay runs the model profile's knobs, the ConfigMap holds the
// gateway's config and policy, the ScaledObject reads the gateway's demand endpoint.
//
// The overlays are built with `kubectl kustomize` when a kubectl is on PATH (Debian 12's
// kubernetes-client is too old for today's kustomization fields); without one, with the small
// loader below (resources, components, namespace, labels, configMapGenerator, strategic-merge
// patches of containers by name), which is all infra/k8s uses; TLAB_K8S_OWN_LOADER=1 forces it.
// Usage: node validate.mjs <source dir>
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import * as core from "kubernetes-models/v1";
import * as apps from "kubernetes-models/apps/v1";
import * as policy from "kubernetes-models/policy/v1";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";

const src = path.resolve(process.argv[2] || path.join(import.meta.dirname, "..", ".."));
const k8s = path.join(src, "infra", "k8s");
let failures = 0, checks = 0;
function check(cond, what) {
  checks++;
  if (!cond) {
    failures++;
    console.error(`CHECK failed: ${what}`);
  }
}

const kinds = {
  "v1/Namespace": core.Namespace, "v1/ConfigMap": core.ConfigMap, "v1/Service": core.Service,
  "v1/PersistentVolumeClaim": core.PersistentVolumeClaim, "apps/v1/Deployment": apps.Deployment,
  "policy/v1/PodDisruptionBudget": policy.PodDisruptionBudget, "keda.sh/v1alpha1/ScaledObject": keda.ScaledObject,
};

function readDocs(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
}

// Strategic merge as infra/k8s needs it: maps merge, lists of named objects merge by name.
function merge(base, patch) {
  if (Array.isArray(base) && Array.isArray(patch) && patch.every((x) => x && x.name)) {
    const out = base.map((x) => ({ ...x }));
    for (const p of patch) {
      const i = out.findIndex((x) => x.name === p.name);
      if (i >= 0) out[i] = merge(out[i], p);
      else out.push(p);
    }
    return out;
  }
  if (base && patch && typeof base === "object" && typeof patch === "object" && !Array.isArray(patch)) {
    const out = { ...base };
    for (const [k, v] of Object.entries(patch)) out[k] = k in base ? merge(base[k], v) : v;
    return out;
  }
  return patch;
}

function loadKustomization(dir) {
  const kz = YAML.parse(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8"));
  let objs = [];
  for (const r of kz.resources || []) {
    const p = path.join(dir, r);
    objs = objs.concat(fs.statSync(p).isDirectory() ? loadKustomization(p) : readDocs(p));
  }
  for (const g of kz.configMapGenerator || []) {
    const data = {};
    for (const f of g.files || []) {
      const [key, file] = f.includes("=") ? f.split("=") : [path.basename(f), f];
      data[key] = fs.readFileSync(path.join(dir, file), "utf8");
    }
    objs.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: g.name }, data });
  }
  const patch = (d, k) => {
    for (const p of (k.patches || []).map((x) => x.path)) {
      for (const pt of readDocs(path.join(d, p))) {
        const i = objs.findIndex((o) => o.kind === pt.kind && o.metadata.name === pt.metadata.name);
        check(i >= 0, `${p}: patches ${pt.kind}/${pt.metadata.name}, which the base has`);
        if (i >= 0) objs[i] = merge(objs[i], pt);
      }
    }
  };
  patch(dir, kz);
  // A Component adds its resources and patches what this kustomization has built so far.
  for (const c of kz.components || []) {
    const cdir = path.join(dir, c);
    const ckz = YAML.parse(fs.readFileSync(path.join(cdir, "kustomization.yaml"), "utf8"));
    check(ckz.kind === "Component", `${c} is a kustomize Component`);
    for (const r of ckz.resources || []) objs = objs.concat(readDocs(path.join(cdir, r)));
    patch(cdir, ckz);
  }
  for (const l of kz.labels || [])
    for (const o of objs) o.metadata.labels = { ...(o.metadata.labels || {}), ...l.pairs };
  if (kz.namespace)
    for (const o of objs) if (o.kind !== "Namespace") o.metadata.namespace = kz.namespace;
  return objs;
}

function kubectlKustomize(dir) {
  if (process.env.TLAB_K8S_OWN_LOADER)
    return null;
  try {
    execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" });
  } catch {
    return null;
  }
  try {
    const out = execFileSync("kubectl", ["kustomize", "--load-restrictor", "LoadRestrictionsNone", dir], { encoding: "utf8" });
    return YAML.parseAllDocuments(out).map((d) => d.toJS()).filter(Boolean);
  } catch (e) {
    console.error(`kubectl kustomize ${dir} failed (${String(e.message).split("\n")[0]}); using the own loader`);
    return null;
  }
}

for (const overlay of ["sim", "vllm", "sim-replicas"]) {
  const dir = path.join(k8s, "overlays", overlay);
  const built = kubectlKustomize(dir);
  const objs = built || loadKustomization(dir);
  console.log(`overlay ${overlay}: ${objs.length} objects (${built ? "kubectl kustomize" : "own loader"})`);
  const byKind = {};
  for (const o of objs) {
    const key = `${o.apiVersion}/${o.kind}`;
    const Model = kinds[key];
    check(Model, `${overlay}: ${key} ${o.metadata?.name} is a kind this test knows`);
    if (!Model) continue;
    try {
      new Model(o).validate();
      check(true, "");
    } catch (e) {
      check(false, `${overlay}: ${key} ${o.metadata.name} does not validate: ${e.message}`);
    }
    (byKind[o.kind] ||= {})[o.metadata.name] = o;
  }
  const gw = byKind.Deployment?.["tlab-gateway"], workers = byKind.Deployment?.["tlab-workers"];
  const cm = byKind.ConfigMap?.["tlab-gateway-config"], so = byKind.ScaledObject?.["tlab-workers"];
  check(gw && workers && cm && so && byKind.Service?.["tlab-workers"] && byKind.PodDisruptionBudget?.["tlab-gateway"],
        `${overlay}: gateway, workers, ConfigMap, ScaledObject, headless Service and PDB are there`);
  if (!gw || !workers || !cm || !so) continue;
  check(byKind.Service["tlab-workers"].spec.clusterIP === "None", `${overlay}: the workers' Service is headless`);
  const cfg = YAML.parse(cm.data["gateway.yaml"]);
  check(cm.data["admission.lua"] === fs.readFileSync(path.join(src, "scripts-lua", "admission.lua"), "utf8"),
        `${overlay}: the ConfigMap's admission.lua is scripts-lua/admission.lua`);
  check(cfg.discovery.dns === "tlab-workers" && cfg.discovery.port === 8000, `${overlay}: the gateway discovers the headless Service`);
  const gc = gw.spec.template.spec.containers[0];
  check(gc.readinessProbe.httpGet.path === "/readyz" && gc.livenessProbe.httpGet.path === "/livez" && gc.lifecycle.preStop,
        `${overlay}: gateway probes /readyz and /livez, with a preStop pause`);
  check(gw.spec.template.spec.securityContext.runAsNonRoot && gc.securityContext.allowPrivilegeEscalation === false,
        `${overlay}: the gateway runs as non-root`);
  check(gw.spec.template.spec.terminationGracePeriodSeconds > 30, `${overlay}: the grace period covers shutdown.grace_s`);
  if (overlay === "sim-replicas") {
    // Several replicas: the limits in Redis, the keys from a Secret, KEDA on the summed demand.
    const args = gc.command.join(" ");
    const redisArg = /--set auth\.redis=([^: ]+):(\d+)/.exec(args);
    const redisSvc = redisArg && byKind.Service?.[redisArg[1]];
    check(gw.spec.replicas >= 2, `${overlay}: ${gw.spec.replicas} gateway replicas`);
    check(redisSvc && redisSvc.spec.ports.some((p) => String(p.port) === redisArg[2]) && byKind.Deployment?.[redisArg[1]],
          `${overlay}: auth.redis (${redisArg && redisArg[0]}) names the Redis Service and port the overlay deploys`);
    const keysMount = gc.volumeMounts.find((m) => m.name === "keys");
    const keysVol = gw.spec.template.spec.volumes.find((v) => v.name === "keys");
    check(keysMount && keysVol?.secret && args.includes(`auth.keys_file=${keysMount.mountPath}/keys.yaml`),
          `${overlay}: auth.keys_file is in the mounted Secret`);
    const prom = so.spec.triggers.find((tr) => tr.type === "prometheus");
    const gate = fs.readFileSync(path.join(src, "core", "src", "dispatch", "gate.c"), "utf8");
    const series = prom ? [...prom.metadata.query.matchAll(/gateway_[a-z_]+/g)].map((m) => m[0]) : [];
    check(prom && series.length === 2 && series.every((n) => gate.includes(`"${n}"`)) && prom.metadata.activationThreshold === "0",
          `${overlay}: KEDA sums the replicas' demand through Prometheus, on series the gateway exports (${series})`);
  } else {
    const trig = so.spec.triggers.find((tr) => tr.type === "metrics-api");
    check(trig && new URL(trig.metadata.url).pathname === "/admin/demand" && trig.metadata.valueLocation === "workers_wanted" &&
          new URL(trig.metadata.url).port === String(cfg.admin.listen.port), `${overlay}: KEDA reads the gateway's /admin/demand on its admin port`);
  }
  check(so.spec.minReplicaCount === 0 && so.spec.scaleTargetRef.name === "tlab-workers", `${overlay}: the workers scale from zero`);
  const wc = workers.spec.template.spec.containers[0];
  if (overlay === "vllm") {
    const prof = YAML.parse(fs.readFileSync(path.join(src, "configs", "model_profiles", "safe.yaml"), "utf8"));
    const want = ["vllm", "serve", prof.model, "--host", "0.0.0.0", "--port", "8000", "--max-model-len", String(prof.max_model_len),
      "--max-num-seqs", String(prof.max_num_seqs), "--max-num-batched-tokens", String(prof.max_num_batched_tokens),
      "--gpu-memory-utilization", String(prof.gpu_memory_utilization), ...(prof.enable_chunked_prefill ? ["--enable-chunked-prefill"] : [])];
    check(JSON.stringify(wc.command) === JSON.stringify(want), `vllm: the worker runs safe.yaml's knobs (${wc.command.join(" ")})`);
    check(wc.resources.limits["nvidia.com/gpu"] === 1 && wc.startupProbe.failureThreshold * wc.startupProbe.periodSeconds >= 300,
          "vllm: one GPU per pod, a startupProbe sized for cold starts");
    const vols = workers.spec.template.spec.volumes.map((v) => v.name);
    check(vols.includes("shm") && vols.includes("models"), "vllm: shared memory and the model cache are mounted");
  } else {
    check(wc.command[0] === "tlab-sim", "sim: the workers are tlab-sim");
  }
}
console.log(`${checks - failures} passed, ${failures} failed`);
process.exit(failures || !checks ? 1 : 0);
