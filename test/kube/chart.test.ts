/**
 * The Helm chart charts/txloop with the real helm and a real kube-apiserver (scripts/ensure-kube.sh):
 * `helm lint`, `helm template` over the value sets below (the rendered YAML parsed and its objects'
 * properties asserted: the mirror's Deployment, flags, probes and securityContext, RBAC limited to
 * txloop.io, the recommended labels, the PDB, Secrets referenced and never in clear, the bundled
 * etcd, the ServiceMonitor and NetworkPolicy, the demo banks and the txloop.sidecar template in a
 * chart of one's own), the values the schema or the templates refuse, and `helm install` /
 * `helm uninstall` on the API server, each install in its own namespace.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../src/testing.js';
import { JsonLineProcess } from '../../tools/processes.js';
import { waitFor } from '../helpers/cli.js';
import { kubeBinDir, kubeObject, startKubeApiserver, type KubeApiserver } from '../helpers/kube.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHART = join(ROOT, 'charts', 'txloop');
const DEMO_BANKS = join(CHART, 'examples', 'demo-banks.yaml');

type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

const ENDPOINTS = ['--set', 'etcd.endpoints={https://etcd-0.etcd.db.svc:2379,https://etcd-1.etcd.db.svc:2379}'];
const TLS_AUTH = [...ENDPOINTS, '--set', 'etcd.tls.enabled=true', '--set', 'etcd.tls.secretName=etcd-client-tls', '--set', 'etcd.auth.enabled=true', '--set', 'etcd.auth.secretName=etcd-auth'];
const BUNDLED = ['--set', 'etcd.bundled.enabled=true'];
const NETWORK_POLICY = [
  ...BUNDLED,
  '--set', 'networkPolicy.enabled=true',
  '--set-json', 'networkPolicy.ingressFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
  '--set-json', 'networkPolicy.egress=[{"to":[{"ipBlock":{"cidr":"10.96.0.1/32"}}],"ports":[{"protocol":"TCP","port":443}]}]',
];
/** Every value set the tests render; each one lints, renders and carries the recommended labels. */
const VALUE_SETS: Record<string, string[]> = {
  'default values with etcd.endpoints': ENDPOINTS,
  'external etcd with TLS and auth Secrets': TLS_AUTH,
  'bundled etcd': BUNDLED,
  'rbac.create=false': [...ENDPOINTS, '--set', 'rbac.create=false'],
  'metrics.serviceMonitor.enabled=true': [...ENDPOINTS, '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.serviceMonitor.labels.release=prometheus'],
  'networkPolicy.enabled=true': NETWORK_POLICY,
  'the demo-banks example': ['-f', DEMO_BANKS],
};

let helmBin: string;
let helmHome: string;
beforeAll(() => {
  helmBin = join(kubeBinDir(), 'helm');
  helmHome = mkdtempSync(join(tmpdir(), 'txloop-helm-'));
});
afterAll(() => {
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
});

function helm(args: string[], kubeconfig?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(helmBin, [...args, ...(kubeconfig ? ['--kubeconfig', kubeconfig] : [])], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, HELM_CACHE_HOME: join(helmHome, 'cache'), HELM_CONFIG_HOME: join(helmHome, 'config'), HELM_DATA_HOME: join(helmHome, 'data'), KUBECONFIG: '/dev/null' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function parse(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      expect(d.errors.map(String)).toEqual([]);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** `helm template` of `chart` with `args`, parsed; fails the test with helm's stderr when it fails. */
function render(args: string[], { release = 'txloop', namespace = 'txloop-system', chart = CHART } = {}): K8sObject[] {
  const r = helm(['template', release, chart, '-n', namespace, ...args]);
  expect(r.status, r.stderr).toBe(0);
  return parse(r.stdout);
}

function refused(args: string[]): string {
  const r = helm(['template', 'txloop', CHART, '-n', 'txloop-system', ...args]);
  expect(r.status, `helm template ${args.join(' ')} rendered`).not.toBe(0);
  return r.stderr;
}

const ofKind = (objs: K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
function one(objs: K8sObject[], kind: string, name?: string): K8sObject {
  const found = ofKind(objs, kind).filter((o) => name === undefined || o.metadata.name === name);
  expect(found.map((o) => `${o.kind}/${o.metadata.name}`), `one ${kind}${name ? ` ${name}` : ''}`).toHaveLength(1);
  return found[0]!;
}
const mirrorOf = (objs: K8sObject[]) => one(objs, 'Deployment', 'txloop-mirror');
const containerOf = (workload: K8sObject, name: string) => {
  const c = (workload.spec.template.spec.containers as any[]).find((x) => x.name === name);
  expect(c, `container ${name} of ${workload.metadata.name}`).toBeDefined();
  return c;
};
const envOf = (container: any): Record<string, any> => Object.fromEntries((container.env as any[]).map((e) => [e.name, e]));
const podSpecs = (objs: K8sObject[]) => objs.filter((o) => o.spec?.template?.spec?.containers).map((o) => ({ owner: `${o.kind}/${o.metadata.name}`, spec: o.spec.template.spec }));

describe('helm lint', () => {
  it('the chart lints clean (--strict) with the default values plus etcd.endpoints and with every value set the tests render', () => {
    for (const [name, args] of Object.entries(VALUE_SETS)) {
      const r = helm(['lint', '--strict', CHART, ...args]);
      expect(r.status, `${name}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout, name).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });
});

describe('helm template', () => {
  it("the chart's crds/ are byte-identical copies of the repository's crds/ (after changing crds/, cp crds/*.yaml charts/txloop/crds/)", () => {
    const top = readdirSync(join(ROOT, 'crds')).sort();
    expect(readdirSync(join(CHART, 'crds')).sort()).toEqual(top);
    for (const f of top) expect(readFileSync(join(CHART, 'crds', f)).equals(readFileSync(join(ROOT, 'crds', f))), f).toBe(true);
  });

  it('every rendered object, and every pod template, carries the recommended labels and helm.sh/chart, whatever the values', () => {
    for (const [name, args] of Object.entries(VALUE_SETS)) {
      const objs = render(args);
      expect(objs.length, name).toBeGreaterThanOrEqual(4);
      const labelled = [...objs.map((o) => ({ what: `${name}: ${o.kind}/${o.metadata.name}`, labels: o.metadata.labels })), ...podSpecs(objs).map((p) => ({ what: `${name}: pods of ${p.owner}`, labels: objs.find((o) => `${o.kind}/${o.metadata.name}` === p.owner)!.spec.template.metadata.labels }))];
      for (const { what, labels } of labelled) {
        expect(labels, what).toMatchObject({
          'app.kubernetes.io/name': 'txloop',
          'app.kubernetes.io/instance': 'txloop',
          'app.kubernetes.io/version': '0.2.0',
          'app.kubernetes.io/part-of': 'txloop',
          'app.kubernetes.io/managed-by': 'Helm',
          'helm.sh/chart': 'txloop-0.2.0',
        });
        expect(labels!['app.kubernetes.io/component'], what).toMatch(/^(mirror|etcd|rbac|demo-bank)$/);
      }
    }
  });

  it('the mirror is a Deployment of 2 replicas running `txloop mirror` with its flags, etcd as TXLOOP_* env, probes on /healthz and /readyz', () => {
    const objs = render(ENDPOINTS);
    const d = mirrorOf(objs);
    expect(d.spec.replicas).toBe(2);
    const pod = d.spec.template.spec;
    expect(pod.serviceAccountName).toBe('txloop-mirror');
    expect(pod.automountServiceAccountToken).toBe(true);
    const c = containerOf(d, 'mirror');
    expect(c.image).toBe('ghcr.io/txloop/txloop:0.2.0');
    expect(c.args).toEqual(['mirror', '--kube-namespace=$(POD_NAMESPACE)', '--identity=$(POD_NAME)', '--listen=0.0.0.0:9402', '--lease-ttl=10s', '--grace=1m', '--resync=5m', '--log-level=info']);
    const env = envOf(c);
    expect(env.POD_NAMESPACE.valueFrom.fieldRef.fieldPath).toBe('metadata.namespace');
    expect(env.POD_NAME.valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    expect(env.TXLOOP_ENDPOINTS.value).toBe('https://etcd-0.etcd.db.svc:2379,https://etcd-1.etcd.db.svc:2379');
    expect(env.TXLOOP_NAMESPACE.value).toBe('txloop/');
    expect(Object.keys(env).filter((k) => /CACERT|CERT|KEY|USER|PASSWORD/.test(k))).toEqual([]);
    expect(c.ports).toEqual([{ name: 'http-metrics', containerPort: 9402, protocol: 'TCP' }]);
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http-metrics' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http-metrics' });
    expect(c.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });

    const tuned = mirrorOf(render([...ENDPOINTS, '--set', 'mirror.replicas=3', '--set', 'mirror.port=9500', '--set', 'mirror.leaseTtl=5s', '--set', 'mirror.grace=30s', '--set', 'mirror.resync=10m', '--set', 'mirror.logLevel=debug', '--set', 'etcd.keyPrefix=prod/']));
    expect(tuned.spec.replicas).toBe(3);
    expect(containerOf(tuned, 'mirror').args).toEqual(['mirror', '--kube-namespace=$(POD_NAMESPACE)', '--identity=$(POD_NAME)', '--listen=0.0.0.0:9500', '--lease-ttl=5s', '--grace=30s', '--resync=10m', '--log-level=debug']);
    expect(envOf(containerOf(tuned, 'mirror')).TXLOOP_NAMESPACE.value).toBe('prod/');

    // A topology spread constraint without a labelSelector spreads the mirror's own pods.
    const spread = mirrorOf(render([...ENDPOINTS, '--set-json', 'mirror.topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"kubernetes.io/hostname","whenUnsatisfiable":"ScheduleAnyway"}]']));
    expect(spread.spec.template.spec.topologySpreadConstraints).toEqual([{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: spread.spec.selector.matchLabels } }]);
  });

  it('every container runs as user 10001, non-root, read-only root filesystem, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp', () => {
    for (const [name, args] of Object.entries(VALUE_SETS)) {
      for (const { owner, spec } of podSpecs(render(args))) {
        expect(spec.securityContext, `${name}: ${owner}`).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } });
        for (const c of spec.containers as any[]) {
          expect(c.securityContext, `${name}: ${owner} ${c.name}`).toEqual({
            runAsNonRoot: true,
            runAsUser: 10001,
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
          });
        }
      }
    }
  });

  it("the mirror's Role grants txloop.io participants and transactions (and get/update/patch on their status), nothing else, bound to the mirror's ServiceAccount", () => {
    const objs = render(ENDPOINTS);
    const role = one(objs, 'Role', 'txloop-mirror');
    expect(role.metadata.namespace).toBe('txloop-system');
    expect(role.rules).toEqual([
      { apiGroups: ['txloop.io'], resources: ['participants', 'transactions'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
      { apiGroups: ['txloop.io'], resources: ['participants/status', 'transactions/status'], verbs: ['patch'] },
    ]);
    const binding = one(objs, 'RoleBinding', 'txloop-mirror');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'txloop-mirror' });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'txloop-mirror', namespace: 'txloop-system' }]);
    expect(one(objs, 'ServiceAccount', 'txloop-mirror').metadata.namespace).toBe('txloop-system');
    // No other rule anywhere reaches outside txloop.io.
    for (const r of [...ofKind(objs, 'Role'), ...ofKind(objs, 'ClusterRole')]) for (const rule of r.rules) expect(rule.apiGroups, r.metadata.name).toEqual(['txloop.io']);
  });

  it('the aggregated ClusterRoles: txloop-view reads txloop.io resources (into view, edit, admin); txloop-repair updates and patches transactions (into edit, admin)', () => {
    const objs = render(ENDPOINTS);
    const view = one(objs, 'ClusterRole', 'txloop-view');
    expect(view.rules).toEqual([{ apiGroups: ['txloop.io'], resources: ['participants', 'transactions'], verbs: ['get', 'list', 'watch'] }]);
    expect(view.metadata.labels).toMatchObject({ 'rbac.authorization.k8s.io/aggregate-to-view': 'true', 'rbac.authorization.k8s.io/aggregate-to-edit': 'true', 'rbac.authorization.k8s.io/aggregate-to-admin': 'true' });
    const repair = one(objs, 'ClusterRole', 'txloop-repair');
    expect(repair.rules).toEqual([{ apiGroups: ['txloop.io'], resources: ['transactions'], verbs: ['update', 'patch'] }]);
    expect(repair.metadata.labels).toMatchObject({ 'rbac.authorization.k8s.io/aggregate-to-edit': 'true', 'rbac.authorization.k8s.io/aggregate-to-admin': 'true' });
    expect(repair.metadata.labels?.['rbac.authorization.k8s.io/aggregate-to-view']).toBeUndefined();
    expect(ofKind(render([...ENDPOINTS, '--set', 'rbac.aggregateClusterRoles=false']), 'ClusterRole')).toEqual([]);
  });

  it('rbac.create=false renders no Role, RoleBinding or ClusterRole', () => {
    const objs = render(VALUE_SETS['rbac.create=false']!);
    for (const kind of ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']) expect(ofKind(objs, kind), kind).toEqual([]);
    expect(mirrorOf(objs).spec.replicas).toBe(2);
  });

  it('a PodDisruptionBudget keeps one mirror pod available, and the metrics Service reaches the mirror pods on their metrics port', () => {
    const objs = render(ENDPOINTS);
    const selector = mirrorOf(objs).spec.selector.matchLabels;
    expect(selector).toEqual({ 'app.kubernetes.io/name': 'txloop', 'app.kubernetes.io/instance': 'txloop', 'app.kubernetes.io/component': 'mirror' });
    const pdb = one(objs, 'PodDisruptionBudget', 'txloop-mirror');
    expect(pdb.apiVersion).toBe('policy/v1');
    expect(pdb.spec).toEqual({ minAvailable: 1, selector: { matchLabels: selector } });
    const svc = one(objs, 'Service', 'txloop-mirror');
    expect(svc.spec.selector).toEqual(selector);
    expect(svc.spec.ports).toEqual([{ name: 'http-metrics', port: 9402, targetPort: 'http-metrics', protocol: 'TCP' }]);
    expect(ofKind(render([...ENDPOINTS, '--set', 'mirror.podDisruptionBudget.enabled=false']), 'PodDisruptionBudget')).toEqual([]);
    // One mirror pod with minAvailable 1 would block every drain: no PDB then.
    expect(ofKind(render([...ENDPOINTS, '--set', 'mirror.replicas=1']), 'PodDisruptionBudget')).toEqual([]);
    expect(one(render([...ENDPOINTS, '--set', 'mirror.podDisruptionBudget.minAvailable=50%']), 'PodDisruptionBudget').spec.minAvailable).toBe('50%');
  });

  it('etcd TLS and auth come from Secrets: credentials by secretKeyRef, files from a Secret volume, no secret material anywhere in the output', () => {
    const out = helm(['template', 'txloop', CHART, '-n', 'txloop-system', ...TLS_AUTH]);
    expect(out.status, out.stderr).toBe(0);
    const objs = parse(out.stdout);
    const c = containerOf(mirrorOf(objs), 'mirror');
    const env = envOf(c);
    expect(env.TXLOOP_USER).toEqual({ name: 'TXLOOP_USER', valueFrom: { secretKeyRef: { name: 'etcd-auth', key: 'username' } } });
    expect(env.TXLOOP_PASSWORD).toEqual({ name: 'TXLOOP_PASSWORD', valueFrom: { secretKeyRef: { name: 'etcd-auth', key: 'password' } } });
    expect(env.TXLOOP_CACERT.value).toBe('/var/run/secrets/txloop/etcd-tls/ca.crt');
    expect(env.TXLOOP_CERT.value).toBe('/var/run/secrets/txloop/etcd-tls/tls.crt');
    expect(env.TXLOOP_KEY.value).toBe('/var/run/secrets/txloop/etcd-tls/tls.key');
    expect(c.volumeMounts).toEqual([{ name: 'txloop-etcd-tls', mountPath: '/var/run/secrets/txloop/etcd-tls', readOnly: true }]);
    const vol = mirrorOf(objs).spec.template.spec.volumes.find((v: any) => v.name === 'txloop-etcd-tls');
    expect(vol.secret.secretName).toBe('etcd-client-tls');
    expect(vol.secret.items.map((i: any) => i.key)).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    // Secrets are referenced, never made or filled in.
    expect(ofKind(objs, 'Secret')).toEqual([]);
    expect(out.stdout).not.toMatch(/stringData|-----BEGIN|password:/);
    for (const { owner, spec } of podSpecs(objs)) {
      for (const ctr of spec.containers as any[]) for (const e of ctr.env ?? []) if (/USER|PASSWORD|TOKEN/.test(e.name)) expect(e.value, `${owner} ${e.name}`).toBeUndefined();
    }

    const caOnly = containerOf(mirrorOf(render([...TLS_AUTH, '--set', 'etcd.tls.clientCertificate=false'])), 'mirror');
    expect(Object.keys(envOf(caOnly)).filter((k) => k.startsWith('TXLOOP_') && /CERT|KEY/.test(k))).toEqual(['TXLOOP_CACERT']);
  });

  it('the bundled etcd is a 3-member StatefulSet behind a headless Service, its initial cluster lists the 3 members, and the endpoints point at it', () => {
    const objs = render(BUNDLED, { namespace: 'tryout' });
    const sts = one(objs, 'StatefulSet', 'txloop-etcd');
    expect(sts.spec.replicas).toBe(3);
    expect(sts.spec.serviceName).toBe('txloop-etcd');
    expect(sts.spec.podManagementPolicy).toBe('Parallel');
    const etcd = containerOf(sts, 'etcd');
    expect(etcd.image).toMatch(/^quay\.io\/coreos\/etcd:v3\.\d+\.\d+$/);
    const flag = (f: string) => (etcd.command as string[]).find((a) => a.startsWith(`--${f}=`))?.slice(f.length + 3);
    const member = (i: number) => `txloop-etcd-${i}.txloop-etcd.tryout.svc.cluster.local`;
    expect(flag('initial-cluster')?.split(',')).toEqual([0, 1, 2].map((i) => `txloop-etcd-${i}=http://${member(i)}:2380`));
    expect(flag('name')).toBe('$(POD_NAME)');
    expect(flag('listen-client-urls')).toBe('http://$(POD_IP):2379,http://127.0.0.1:2379');
    expect(flag('listen-peer-urls')).toBe('http://$(POD_IP):2380');
    expect(envOf(etcd).POD_IP.valueFrom.fieldRef.fieldPath).toBe('status.podIP');
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('1Gi');
    expect(sts.spec.volumeClaimTemplates[0].spec.storageClassName).toBeUndefined();
    const svc = one(objs, 'Service', 'txloop-etcd');
    expect(svc.spec.clusterIP).toBe('None');
    expect(svc.spec.publishNotReadyAddresses).toBe(true);
    expect(svc.spec.selector).toEqual(sts.spec.selector.matchLabels);
    expect(envOf(containerOf(mirrorOf(objs), 'mirror')).TXLOOP_ENDPOINTS.value.split(',')).toEqual([0, 1, 2].map((i) => `http://${member(i)}:2379`));

    const five = render([...BUNDLED, '--set', 'etcd.bundled.replicas=5', '--set', 'etcd.bundled.persistence.storageClass=fast', '--set', 'etcd.bundled.persistence.size=5Gi']);
    const sts5 = one(five, 'StatefulSet', 'txloop-etcd');
    expect(sts5.spec.replicas).toBe(5);
    expect((containerOf(sts5, 'etcd').command as string[]).find((a) => a.startsWith('--initial-cluster='))!.split(',')).toHaveLength(5);
    expect(envOf(containerOf(mirrorOf(five), 'mirror')).TXLOOP_ENDPOINTS.value.split(',')).toHaveLength(5);
    expect(sts5.spec.volumeClaimTemplates[0].spec).toMatchObject({ storageClassName: 'fast', resources: { requests: { storage: '5Gi' } } });
    expect(ofKind(render(ENDPOINTS), 'StatefulSet')).toEqual([]);
  });

  it('metrics.serviceMonitor.enabled renders a ServiceMonitor scraping the metrics Service, with its labels; none by default', () => {
    const objs = render(VALUE_SETS['metrics.serviceMonitor.enabled=true']!);
    const sm = one(objs, 'ServiceMonitor', 'txloop-mirror');
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(sm.metadata.labels?.release).toBe('prometheus');
    expect(sm.spec.selector.matchLabels).toEqual(one(objs, 'Service', 'txloop-mirror').spec.selector);
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: ['txloop-system'] });
    expect(sm.spec.endpoints).toEqual([{ port: 'http-metrics', path: '/metrics', interval: '60s', scrapeTimeout: '30s' }]);
    expect(ofKind(render(ENDPOINTS), 'ServiceMonitor')).toEqual([]);
  });

  it('networkPolicy.enabled: ingress only to the metrics port from the chosen peers; egress only to DNS, the bundled etcd and the given rules', () => {
    const objs = render(NETWORK_POLICY);
    const np = one(objs, 'NetworkPolicy', 'txloop-mirror');
    expect(np.spec.podSelector.matchLabels).toEqual(mirrorOf(objs).spec.selector.matchLabels);
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec.ingress).toEqual([{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 9402 }] }]);
    expect(np.spec.egress).toEqual([
      { ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
      { to: [{ podSelector: { matchLabels: one(objs, 'StatefulSet', 'txloop-etcd').spec.selector.matchLabels } }], ports: [{ protocol: 'TCP', port: 2379 }] },
      { to: [{ ipBlock: { cidr: '10.96.0.1/32' } }], ports: [{ protocol: 'TCP', port: 443 }] },
    ]);
    // Without peers nobody may connect; without the bundled etcd only DNS is allowed out.
    const closed = one(render([...ENDPOINTS, '--set', 'networkPolicy.enabled=true']), 'NetworkPolicy');
    expect(closed.spec.ingress).toEqual([]);
    expect(closed.spec.egress).toEqual([{ ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] }]);
    expect(ofKind(render(ENDPOINTS), 'NetworkPolicy')).toEqual([]);
  });

  it('the demo-banks example runs each bank beside a txloop sidecar (txloop.sidecar) with its own resources ConfigMap, and a Service for its Trys', () => {
    const objs = render(VALUE_SETS['the demo-banks example']!, { namespace: 'demo' });
    one(objs, 'StatefulSet', 'txloop-etcd');
    mirrorOf(objs);
    for (const [bank, account] of [['bank-a', 'A'], ['bank-b', 'B']] as const) {
      const d = one(objs, 'Deployment', `txloop-${bank}`);
      const pod = d.spec.template.spec;
      expect(pod.containers.map((c: any) => c.name)).toEqual(['bank', 'txloop-sidecar']);
      const b = containerOf(d, 'bank');
      expect(b.stdin).toBe(true);
      expect(b.command.join(' ')).toMatch(/exec go-bank --app "\$APP" --account "\$ACCOUNT" --state "\$STATE"\s+--listen "0\.0\.0\.0:\$PORT" --sidecar http:\/\/127\.0\.0\.1:7480/);
      expect(envOf(b).APP.value).toBe(bank);
      expect(envOf(b).ACCOUNT.value).toBe(account);
      const sidecar = containerOf(d, 'txloop-sidecar');
      expect(sidecar.args).toEqual(['sidecar', '--app', bank, '--service-url', 'http://127.0.0.1:8081', '--listen', '127.0.0.1:7480', '--resources', '/etc/txloop/resources.yaml', '--log-level', 'info', '--max-attempts=5']);
      expect(envOf(sidecar).TXLOOP_ENDPOINTS.value).toBe(envOf(containerOf(mirrorOf(objs), 'mirror')).TXLOOP_ENDPOINTS.value);
      const cm = one(objs, 'ConfigMap', `txloop-${bank}-resources`);
      expect(pod.volumes.find((v: any) => v.name === 'txloop-resources').configMap.name).toBe(cm.metadata.name);
      const resources = parseAllDocuments(cm.data['resources.yaml'])[0]!.toJS();
      expect(resources).toEqual({ resources: { debit: { try: '/try/debit', confirm: '/debit/confirm', cancel: '/debit/cancel' }, credit: { try: '/try/credit', confirm: '/credit/confirm', cancel: '/credit/cancel' } } });
      const svc = one(objs, 'Service', `txloop-${bank}`);
      expect(svc.spec.selector).toEqual(d.spec.selector.matchLabels);
      expect(svc.spec.ports[0]).toMatchObject({ port: 8081, targetPort: 'http' });
    }
    expect(ofKind(render(ENDPOINTS), 'ConfigMap')).toEqual([]);
  });

  it('txloop.sidecar in a chart of your own renders `txloop sidecar` with its real flags, the etcd env and Secret mounts, in-container probes and the locked-down securityContext', () => {
    const dir = mkdtempSync(join(tmpdir(), 'txloop-app-chart-'));
    try {
      mkdirSync(join(dir, 'templates'));
      cpSync(CHART, join(dir, 'charts', 'txloop'), { recursive: true });
      writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: orders\nversion: 1.0.0\ndependencies:\n  - name: txloop\n    version: 0.2.0\n');
      writeFileSync(join(dir, 'values.yaml'), ['txloop:', '  mirror: { enabled: false }', '  rbac: { create: false }', '  etcd:', '    endpoints: [https://etcd.db:2379]', '    tls: { enabled: true, secretName: etcd-client-tls }', '    auth: { enabled: true, secretName: etcd-auth }', ''].join('\n'));
      writeFileSync(
        join(dir, 'templates', 'deployment.yaml'),
        [
          'apiVersion: apps/v1',
          'kind: Deployment',
          'metadata: { name: orders }',
          'spec:',
          '  selector: { matchLabels: { app: orders } }',
          '  template:',
          '    metadata: { labels: { app: orders } }',
          '    spec:',
          '      containers:',
          '        - name: orders',
          '          image: orders:1.0',
          '        {{- include "txloop.sidecar" (dict "root" .Subcharts.txloop "app" "orders" "servicePort" 8080 "resourcesConfigMap" "orders-txloop" "tokenSecret" "orders-token") | nindent 8 }}',
          '      volumes:',
          '        {{- include "txloop.sidecarVolumes" (dict "root" .Subcharts.txloop "resourcesConfigMap" "orders-txloop" "tokenSecret" "orders-token") | nindent 8 }}',
          '',
        ].join('\n'),
      );
      const objs = render([], { chart: dir, release: 'shop', namespace: 'shop' });
      expect(ofKind(objs, 'Deployment').map((d) => d.metadata.name)).toEqual(['orders']);
      const d = one(objs, 'Deployment', 'orders');
      const c = containerOf(d, 'txloop-sidecar');
      expect(c.image).toBe('ghcr.io/txloop/txloop:0.2.0');
      expect(c.args).toEqual(['sidecar', '--app', 'orders', '--service-url', 'http://127.0.0.1:8080', '--listen', '127.0.0.1:7480', '--resources', '/etc/txloop/resources.yaml', '--token-file', '/var/run/secrets/txloop/token/token', '--log-level', 'info']);
      const env = envOf(c);
      expect(env.TXLOOP_ENDPOINTS.value).toBe('https://etcd.db:2379');
      expect(env.TXLOOP_CACERT.value).toBe('/var/run/secrets/txloop/etcd-tls/ca.crt');
      expect(env.TXLOOP_PASSWORD.valueFrom.secretKeyRef).toEqual({ name: 'etcd-auth', key: 'password' });
      // The sidecar listens on loopback only: its probes run inside the container.
      expect(c.livenessProbe.exec.command.join(' ')).toContain("fetch('http://127.0.0.1:7480/healthz')");
      expect(c.readinessProbe.exec.command.join(' ')).toContain("fetch('http://127.0.0.1:7480/readyz')");
      expect(c.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      const mounts = Object.fromEntries((c.volumeMounts as any[]).map((m) => [m.name, m.mountPath]));
      expect(mounts).toEqual({ 'txloop-resources': '/etc/txloop', 'txloop-token': '/var/run/secrets/txloop/token', 'txloop-etcd-tls': '/var/run/secrets/txloop/etcd-tls' });
      const vols = Object.fromEntries((d.spec.template.spec.volumes as any[]).map((v) => [v.name, v]));
      expect(Object.keys(vols).sort()).toEqual(Object.keys(mounts).sort());
      expect(vols['txloop-resources'].configMap).toEqual({ name: 'orders-txloop', items: [{ key: 'resources.yaml', path: 'resources.yaml' }] });
      expect(vols['txloop-token'].secret).toMatchObject({ secretName: 'orders-token', items: [{ key: 'token', path: 'token' }] });
      expect(vols['txloop-etcd-tls'].secret.secretName).toBe('etcd-client-tls');
      // mirror.enabled=false and rbac.create=false: the dependency adds nothing but the template.
      expect(objs.map((o) => o.kind)).toEqual(['Deployment']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('every flag txloop.sidecar passes is one `txloop sidecar --help` lists', () => {
    const help = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'sidecar', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(help.status, help.stderr).toBe(0);
    const listed = new Set(help.stdout.match(/--[a-z][a-z-]+/g));
    const sidecars = [...podSpecs(render(VALUE_SETS['the demo-banks example']!)).flatMap((p) => p.spec.containers as any[])].filter((c) => c.name === 'txloop-sidecar');
    expect(sidecars).toHaveLength(2);
    for (const c of sidecars) for (const a of c.args as string[]) if (a.startsWith('--')) expect(listed, a).toContain(a.replace(/=.*/, ''));
  });

  it('image.digest pins the image instead of the tag; image.tag replaces appVersion', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(containerOf(mirrorOf(render([...ENDPOINTS, '--set', `image.digest=${digest}`])), 'mirror').image).toBe(`ghcr.io/txloop/txloop@${digest}`);
    expect(containerOf(mirrorOf(render([...ENDPOINTS, '--set', 'image.tag=0.2.1', '--set', 'image.repository=registry.example/txloop'])), 'mirror').image).toBe('registry.example/txloop:0.2.1');
  });
});

describe('values the chart refuses', () => {
  it("a value of the wrong type fails with the schema's message", () => {
    expect(refused([...ENDPOINTS, '--set', 'mirror.replicas=two'])).toMatch(/values don't meet the specifications of the schema[\s\S]*\/mirror\/replicas.*got string, want integer/);
    expect(refused([...ENDPOINTS, '--set', 'rbac.create=maybe'])).toMatch(/\/rbac\/create.*got string, want boolean/);
  });

  it("an unknown top-level key fails with the schema's message", () => {
    expect(refused([...ENDPOINTS, '--set', 'replicas=3'])).toMatch(/at '': additional properties 'replicas' not allowed/);
  });

  it('a choice outside its list, a malformed duration or endpoint fails with the schema\'s message', () => {
    expect(refused([...ENDPOINTS, '--set', 'mirror.logLevel=loud'])).toMatch(/\/mirror\/logLevel.*value must be one of 'trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'/);
    expect(refused([...ENDPOINTS, '--set', 'image.pullPolicy=Sometimes'])).toMatch(/\/image\/pullPolicy.*value must be one of 'IfNotPresent', 'Always', 'Never'/);
    expect(refused([...ENDPOINTS, '--set', 'mirror.grace=one minute'])).toMatch(/\/mirror\/grace.*does not match pattern/);
    expect(refused(['--set', 'etcd.endpoints={etcd:2379}'])).toMatch(/\/etcd\/endpoints\/0.*does not match pattern/);
  });

  it('there is no value for an etcd password: etcd.auth.password is refused', () => {
    expect(refused([...ENDPOINTS, '--set', 'etcd.auth.enabled=true', '--set', 'etcd.auth.secretName=etcd-auth', '--set', 'etcd.auth.password=hunter2'])).toMatch(/\/etcd\/auth.*additional properties 'password' not allowed/);
  });

  it('neither etcd.endpoints nor etcd.bundled.enabled fails the render with a clear message (helm lint, lenient about fail by design, prints it)', () => {
    const why = /txloop: no etcd: set etcd\.endpoints to your etcd's client URLs .* or etcd\.bundled\.enabled=true/;
    expect(refused([])).toMatch(why);
    expect(refused(['--set', 'mirror.enabled=false'])).toMatch(why);
    expect(helm(['lint', CHART]).stderr).toMatch(why);
  });

  it('etcd.endpoints together with the bundled etcd, or TLS/auth without a Secret name, or TLS on the bundled etcd, fail with a clear message', () => {
    expect(refused([...ENDPOINTS, ...BUNDLED])).toMatch(/give either etcd\.endpoints .* or etcd\.bundled\.enabled=true .*not both/);
    expect(refused([...ENDPOINTS, '--set', 'etcd.tls.enabled=true'])).toMatch(/etcd\.tls\.enabled needs etcd\.tls\.secretName/);
    expect(refused([...ENDPOINTS, '--set', 'etcd.auth.enabled=true'])).toMatch(/etcd\.auth\.enabled needs etcd\.auth\.secretName/);
    expect(refused([...BUNDLED, '--set', 'etcd.auth.enabled=true', '--set', 'etcd.auth.secretName=x'])).toMatch(/the bundled etcd has no TLS and no authentication/);
  });
});

describe('helm install on a real kube-apiserver', () => {
  let kube: KubeApiserver;
  beforeAll(async () => {
    kube = await startKubeApiserver();
  });
  afterAll(async () => {
    await kube?.stop();
  });

  const install = (release: string, namespace: string, args: string[]) => {
    const r = helm(['install', release, CHART, '-n', namespace, '--create-namespace', '--no-hooks', ...args], kube.kubeconfig);
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  };
  const exists = (args: string[]) => {
    const r = kube.kubectl(['get', ...args, '-o', 'name']);
    expect(r.status, `kubectl get ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };

  it("helm install creates the CRDs (Established) and the mirror's objects; kubectl get txloop works in the namespace; the mirror's ServiceAccount may touch txloop.io and nothing else", () => {
    const notes = install('txloop', 'txloop-system', ENDPOINTS);
    expect(notes).toMatch(/STATUS: deployed/);
    expect(notes).toContain('kubectl get txloop -n txloop-system');
    expect(notes).toContain('kubectl txloop get gtx --endpoints https://etcd-0.etcd.db.svc:2379,https://etcd-1.etcd.db.svc:2379');
    for (const crd of ['participants.txloop.io', 'transactions.txloop.io']) {
      const w = kube.kubectl(['wait', '--for=condition=Established', `crd/${crd}`, '--timeout=60s']);
      expect(w.status, w.stderr).toBe(0);
    }
    const get = kube.kubectl(['get', 'txloop', '-n', 'txloop-system']);
    expect(get.status, get.stderr).toBe(0);
    expect(exists(['deployment/txloop-mirror', '-n', 'txloop-system'])).toBe('deployment.apps/txloop-mirror');
    const deployment = JSON.parse(kube.kubectl(['get', 'deployment/txloop-mirror', '-n', 'txloop-system', '-o', 'json']).stdout);
    expect(deployment.spec.replicas).toBe(2);
    for (const o of ['serviceaccount/txloop-mirror', 'role.rbac.authorization.k8s.io/txloop-mirror', 'rolebinding.rbac.authorization.k8s.io/txloop-mirror', 'service/txloop-mirror', 'poddisruptionbudget.policy/txloop-mirror']) {
      expect(exists([o, '-n', 'txloop-system'])).toBe(o);
    }
    expect(exists(['clusterrole/txloop-view'])).toBe('clusterrole.rbac.authorization.k8s.io/txloop-view');
    expect(exists(['clusterrole/txloop-repair'])).toBe('clusterrole.rbac.authorization.k8s.io/txloop-repair');
    const canI = (verb: string, resource: string, namespace = 'txloop-system') =>
      kube.kubectl(['auth', 'can-i', verb, resource, '-n', namespace, '--as=system:serviceaccount:txloop-system:txloop-mirror']).stdout.trim();
    expect(canI('patch', 'transactions.txloop.io', 'txloop-system')).toBe('yes');
    expect(canI('patch', 'participants.txloop.io/status')).toBe('yes');
    expect(canI('update', 'transactions.txloop.io')).toBe('no');
    expect(canI('delete', 'transactions.txloop.io')).toBe('yes');
    expect(canI('get', 'secrets')).toBe('no');
    expect(canI('list', 'pods')).toBe('no');
    expect(canI('list', 'transactions.txloop.io', 'default')).toBe('no');
  });

  it("the mirror works with only the RBAC the chart gives it: run with its ServiceAccount's token, it creates, writes status, clears a repair and deletes, and nothing is forbidden", async () => {
    // The release of the test above, in txloop-system: its ServiceAccount, Role and RoleBinding.
    const token = kube.kubectl(['create', 'token', 'txloop-mirror', '-n', 'txloop-system', '--duration', '1h']);
    expect(token.status, token.stderr).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'txloop-sa-'));
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, readFileSync(kube.kubeconfig, 'utf8').replace(/token: .*/, `token: ${token.stdout.trim()}`));
    const etcd = await startEtcd();
    const client = new Etcd3({ hosts: etcd.endpoints });
    const ns = 'rbac/';
    const mirror = new JsonLineProcess({ name: 'mirror-as-sa', script: join(ROOT, 'dist', 'cli', 'main.js'), javascript: true, args: ['mirror', '--endpoints', etcd.endpoints.join(','), '--namespace', ns, '--kubeconfig', kubeconfig, '--kube-namespace', 'txloop-system', '--listen', '127.0.0.1:0', '--lease-ttl', '3s', '--log-level', 'info'] });
    const get = (kind: string, name: string) => kubeObject(kube, 'txloop-system', kind, name);
    try {
      await mirror.waitForEvent((e) => e.event === 'ready', 'the mirror ready', { timeoutMs: 30_000 });
      const xid = 'orders.0000rbac0000rbac1';
      await client.put(`${ns}orders/gtx/${xid}`).value('{"v":1');
      await waitFor(() => get('txn', xid)?.status?.status === 'MALFORMED', 'a Transaction with its status (create, status patch)', 30_000);
      await waitFor(() => get('txp', 'orders'), 'a Participant');
      expect(kube.kubectl(['patch', 'txn', xid, '-n', 'txloop-system', '--type', 'merge', '-p', JSON.stringify({ spec: { repair: { action: 'abort', reason: 'rbac check' } } })]).status).toBe(0);
      await waitFor(() => {
        const o = get('txn', xid);
        return o && o.spec.repair === undefined && (o.status.conditions as { type: string }[]).some((c) => c.type === 'RepairRefused');
      }, 'the repair outcome recorded and the request cleared (patch)', 30_000);
      await client.delete().prefix(ns);
      await waitFor(() => get('txn', xid) === undefined && get('txp', 'orders') === undefined, 'both deleted (delete)', 30_000);
      expect(mirror.stderr.filter((l) => /forbidden/i.test(l))).toEqual([]);
    } finally {
      await mirror.stop('SIGTERM', 5_000);
      client.close();
      await etcd.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('helm install accepts every other value set on the API server, each in its own namespace (ServiceMonitor aside: no prometheus-operator CRDs here)', () => {
    const sets: Array<[string, string[], string[]]> = [
      ['tls-auth', VALUE_SETS['external etcd with TLS and auth Secrets']!, ['deployment/tls-auth-txloop-mirror']],
      ['bundled', VALUE_SETS['bundled etcd']!, ['statefulset/bundled-txloop-etcd', 'service/bundled-txloop-etcd']],
      ['no-rbac', VALUE_SETS['rbac.create=false']!, ['deployment/no-rbac-txloop-mirror']],
      ['netpol', VALUE_SETS['networkPolicy.enabled=true']!, ['networkpolicy/netpol-txloop-mirror', 'statefulset/netpol-txloop-etcd']],
      ['demo', VALUE_SETS['the demo-banks example']!, ['deployment/demo-txloop-bank-a', 'deployment/demo-txloop-bank-b', 'configmap/demo-txloop-bank-a-resources', 'service/demo-txloop-bank-b']],
    ];
    for (const [release, args, objects] of sets) {
      install(release, `chart-${release}`, args);
      for (const o of objects) expect(exists([o, '-n', `chart-${release}`]), `${release}: ${o}`).toMatch(new RegExp(`/${o.split('/')[1]}$`));
    }
    expect(kube.kubectl(['get', 'role', '-n', 'chart-no-rbac', '-o', 'name']).stdout.trim()).toBe('');
  });

  it('helm uninstall leaves no release behind, and takes its objects with it', () => {
    install('short-lived', 'chart-uninstall', ENDPOINTS);
    const listed = (): string[] => JSON.parse(helm(['list', '-A', '-o', 'json'], kube.kubeconfig).stdout).map((r: { name: string }) => r.name);
    expect(listed()).toContain('short-lived');
    const u = helm(['uninstall', 'short-lived', '-n', 'chart-uninstall'], kube.kubeconfig);
    expect(u.status, u.stderr).toBe(0);
    expect(listed()).not.toContain('short-lived');
    const gone = kube.kubectl(['get', 'deployment/short-lived-txloop-mirror', '-n', 'chart-uninstall']);
    expect(gone.status).not.toBe(0);
    expect(gone.stderr).toMatch(/NotFound/);
    expect(kube.kubectl(['get', 'clusterrole/short-lived-txloop-view']).stderr).toMatch(/NotFound/);
    // helm never deletes CRDs: the other releases' resources stay readable.
    expect(exists(['crd/transactions.txloop.io'])).toBe('customresourcedefinition.apiextensions.k8s.io/transactions.txloop.io');
  });
});

describe('the mirror command', () => {
  it('every flag the mirror Deployment passes is one `txloop mirror --help` lists', () => {
    const help = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'mirror', '--help'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(help.status, help.stderr).toBe(0);
    const listed = new Set(help.stdout.match(/--[a-z][a-z-]+/g));
    for (const a of containerOf(mirrorOf(render(ENDPOINTS)), 'mirror').args as string[]) if (a.startsWith('--')) expect(listed, a).toContain(a.replace(/=.*/, ''));
  });
});
