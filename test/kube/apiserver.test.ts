/**
 * The ground the Kubernetes work stands on (issue: CRDs that show stuck transactions in kubectl):
 * a real kube-apiserver, built from Go modules and run on loopback on its own etcd, serves a custom
 * resource with a status subresource and printer columns as a cluster would — without any
 * controller-manager, which the txloop mirror does not need.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubeApiserver, type KubeApiserver } from '../helpers/kube.js';

let kube: KubeApiserver;
beforeAll(async () => {
  kube = await startKubeApiserver();
});
afterAll(async () => {
  await kube?.stop();
});

const CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: widgets.test.txloop.dev }
spec:
  group: test.txloop.dev
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget, shortNames: [wd] }
  versions:
    - name: v1
      served: true
      storage: true
      subresources: { status: {} }
      additionalPrinterColumns:
        - { name: Phase, type: string, jsonPath: .status.phase }
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: { type: object, properties: { size: { type: integer, minimum: 1 } } }
            status: { type: object, properties: { phase: { type: string } } }
`;

describe('a real kube-apiserver for the Kubernetes tests', () => {
  it('establishes a CRD, validates its objects, keeps status apart from spec (the status subresource) and prints its columns', async () => {
    expect(kube.kubectl(['apply', '-f', '-'], CRD).status).toBe(0);
    expect(kube.kubectl(['wait', '--for=condition=Established', 'crd/widgets.test.txloop.dev', '--timeout=60s']).status).toBe(0);
    const invalid = kube.kubectl(['apply', '-f', '-'], 'apiVersion: test.txloop.dev/v1\nkind: Widget\nmetadata: { name: bad, namespace: default }\nspec: { size: 0 }\n');
    expect(invalid.status).not.toBe(0);
    expect(invalid.stderr).toMatch(/spec\.size.*should be greater than or equal to 1/);
    expect(kube.kubectl(['apply', '-f', '-'], 'apiVersion: test.txloop.dev/v1\nkind: Widget\nmetadata: { name: w1, namespace: default }\nspec: { size: 2 }\n').status).toBe(0);
    const patched = kube.kubectl(['patch', 'widget', 'w1', '-n', 'default', '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Stuck"},"spec":{"size":9}}']);
    expect(patched.status, patched.stderr).toBe(0);
    const got = JSON.parse(kube.kubectl(['get', 'wd', 'w1', '-n', 'default', '-o', 'json']).stdout) as { spec: { size: number }; status: { phase: string } };
    // Through /status only the status changes.
    expect(got).toMatchObject({ spec: { size: 2 }, status: { phase: 'Stuck' } });
    expect(kube.kubectl(['get', 'widgets', '-n', 'default']).stdout).toMatch(/^NAME\s+PHASE\nw1\s+Stuck\n$/);
  });
});
