// Command ephemeros-dnsupdate points a DNS name at an address with an RFC 2136 update signed with TSIG.
//
// ephemeros nodes run it to keep their own records current when their addresses come from DHCP. The TSIG
// secret comes from the environment (DNS_TSIG_SECRET, from the node's stick), never from the command line.
//
//	ephemeros-dnsupdate -server 10.0.0.53:53 -zone lab.example.com -key-name ephemeros [-algorithm hmac-sha256]
//	    [-ttl 300] NAME A|AAAA ADDRESS
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

var algorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

func main() {
	server := flag.String("server", "", "primary name server, host:port")
	zone := flag.String("zone", "", "zone to update")
	keyName := flag.String("key-name", "", "TSIG key name")
	algorithm := flag.String("algorithm", "hmac-sha256", "TSIG algorithm")
	ttl := flag.Uint("ttl", 300, "TTL of the record")
	timeout := flag.Duration("timeout", 10*time.Second, "how long to wait for the server")
	flag.Parse()
	if err := run(*server, *zone, *keyName, *algorithm, uint32(*ttl), *timeout, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "ephemeros-dnsupdate: %v\n", err)
		os.Exit(1)
	}
}

func run(server, zone, keyName, algorithm string, ttl uint32, timeout time.Duration, args []string) error {
	if server == "" || zone == "" || keyName == "" || len(args) != 3 {
		return fmt.Errorf("usage: ephemeros-dnsupdate -server HOST:PORT -zone ZONE -key-name KEY NAME A|AAAA ADDRESS")
	}
	secret := os.Getenv("DNS_TSIG_SECRET")
	if secret == "" {
		return fmt.Errorf("DNS_TSIG_SECRET is not set (it comes from the node's stick)")
	}
	tsigAlgorithm, ok := algorithms[algorithm]
	if !ok {
		return fmt.Errorf("unknown TSIG algorithm %q", algorithm)
	}
	name, kind, value := dns.Fqdn(args[0]), strings.ToUpper(args[1]), args[2]
	if (kind != "A" && kind != "AAAA") || net.ParseIP(value) == nil {
		return fmt.Errorf("give a record as NAME A|AAAA ADDRESS, not %q %q %q", args[0], args[1], value)
	}
	record, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", name, ttl, kind, value))
	if err != nil {
		return err
	}

	update := new(dns.Msg)
	update.SetUpdate(dns.Fqdn(zone))
	update.RemoveRRset([]dns.RR{record})
	update.Insert([]dns.RR{record})
	update.SetTsig(dns.Fqdn(keyName), tsigAlgorithm, 300, time.Now().Unix())

	client := &dns.Client{Net: "tcp", Timeout: timeout, TsigSecret: map[string]string{dns.Fqdn(keyName): secret}}
	answer, _, err := client.Exchange(update, server)
	if errors.Is(err, dns.ErrAuth) || errors.Is(err, dns.ErrSig) {
		return fmt.Errorf("updating %s at %s: %w: the server refused the TSIG key "+
			"(check dns.rfc2136.keyName, algorithm and dnsTsigSecret)", name, server, err)
	}
	if err != nil {
		return fmt.Errorf("updating %s at %s: %w", name, server, err)
	}
	if answer.Rcode != dns.RcodeSuccess {
		hint := ""
		if answer.Rcode == dns.RcodeNotAuth {
			hint = ": the server refused the TSIG key (check dns.rfc2136.keyName, algorithm and dnsTsigSecret)"
		} else if answer.Rcode == dns.RcodeRefused {
			hint = ": the server does not allow this key to update the zone"
		}
		return fmt.Errorf("updating %s at %s: the server answered %s%s", name, server, dns.RcodeToString[answer.Rcode], hint)
	}
	fmt.Printf("%s %s -> %s\n", strings.TrimSuffix(name, "."), kind, value)
	return nil
}
