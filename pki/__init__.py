"""Floor 2, PKI: keys and X.509 certificates for the program's CAs (the datastore's TLS, the k3s cluster's
identity), and the facts k3s derives from them (its join token's CA hash). Pure: no Pulumi, no I/O."""
