import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Every test file starts its own etcd; two cores run two files at a time without starving etcd.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      // `npm test`: everything but Kubernetes.
      { extends: true, test: { name: 'core', include: ['test/**/*.test.ts'], exclude: ['test/kube/**'] } },
      // `.ci/run` runs this one too: a real kube-apiserver (built once by scripts/ensure-kube.sh).
      { extends: true, test: { name: 'kube', include: ['test/kube/**/*.test.ts'], hookTimeout: 1_800_000, testTimeout: 180_000 } },
    ],
  },
});
