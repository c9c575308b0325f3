// The CustomResourceDefinitions of k3s's helm-controller (HelmChart, HelmChartConfig), as the module ships them:
// the test API server learns them, so that the program's HelmChart manifests are checked against the real schema.
module ephemeros.local/testtools/helm-crds

go 1.25.0

require github.com/k3s-io/helm-controller v0.17.9
