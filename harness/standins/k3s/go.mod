module ephemeros.local/harness/standins/k3s

go 1.21
