// Command ephemeros-dnsupdate keeps a DNS name pointed at this node with RFC 2136 updates signed with TSIG.
//
// ephemeros nodes run it to keep their own records current when their addresses come from DHCP, and servers run
// it to claim (and release) their place in a name they share. The TSIG secret comes from the environment
// (DNS_TSIG_SECRET, from the node's stick), never from the command line. Every answer it acts on must carry a
// valid TSIG signature.
//
//	ephemeros-dnsupdate [flags] NAME A|AAAA ADDRESS              point NAME at ADDRESS alone
//	ephemeros-dnsupdate [flags] -claim [-lease 15m] NAME A ADDRESS  add ADDRESS to NAME's set, and expire the
//	                                                               addresses whose claim is older than the lease
//	ephemeros-dnsupdate [flags] -release NAME A ADDRESS            take ADDRESS out of NAME's set
//
// flags: -server HOST:PORT -zone ZONE -key-name KEY [-algorithm hmac-sha256] [-ttl 300] [-timeout 10s]
//
// A shared name is a real set: each address in it has a claim, a TXT record at <address>._claims.<NAME> holding
// the Unix time of its last claim. A claimant renews its own claim at every run; an address whose claim is missing
// or older than the lease (its server stopped claiming: powered off, or unhealthy and unable to release) is taken
// out, but only while its claim still holds the stale value seen (a prerequisite), so a claim renewed in between
// is never lost.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
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

// server is the zone's primary, reached with one TSIG key.
type server struct {
	address, zone, keyName, algorithm string
	client                            *dns.Client
}

func main() {
	address := flag.String("server", "", "primary name server, host:port")
	zone := flag.String("zone", "", "zone to update")
	keyName := flag.String("key-name", "", "TSIG key name")
	algorithm := flag.String("algorithm", "hmac-sha256", "TSIG algorithm")
	ttl := flag.Uint("ttl", 300, "TTL of the records")
	timeout := flag.Duration("timeout", 10*time.Second, "how long to wait for the server")
	claim := flag.Bool("claim", false, "add ADDRESS to NAME's set instead of replacing it, and expire stale claims")
	release := flag.Bool("release", false, "take ADDRESS out of NAME's set")
	lease := flag.Duration("lease", 15*time.Minute, "with -claim: how long a claim lasts without being renewed")
	flag.Parse()
	if err := run(*address, *zone, *keyName, *algorithm, uint32(*ttl), *timeout, *claim, *release, *lease, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "ephemeros-dnsupdate: %v\n", err)
		os.Exit(1)
	}
}

func run(address, zone, keyName, algorithm string, ttl uint32, timeout time.Duration, claim, release bool,
	lease time.Duration, args []string) error {
	if address == "" || zone == "" || keyName == "" || len(args) != 3 || (claim && release) {
		return fmt.Errorf("usage: ephemeros-dnsupdate -server HOST:PORT -zone ZONE -key-name KEY [-claim|-release] NAME A|AAAA ADDRESS")
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
	s := &server{
		address: address, zone: dns.Fqdn(zone), keyName: dns.Fqdn(keyName), algorithm: tsigAlgorithm,
		client: &dns.Client{Net: "tcp", Timeout: timeout, TsigSecret: map[string]string{dns.Fqdn(keyName): secret}},
	}
	switch {
	case claim:
		err = s.claim(record, ttl, lease)
	case release:
		err = s.release(record)
	default:
		err = s.replace(record)
	}
	if err != nil {
		return err
	}
	verb := map[bool]string{true: "claims", false: "->"}[claim]
	if release {
		verb = "releases"
	}
	fmt.Printf("%s %s %s %s\n", strings.TrimSuffix(name, "."), kind, verb, value)
	return nil
}

// replace makes ADDRESS the name's only record of its type.
func (s *server) replace(record dns.RR) error {
	update := s.update(record)
	update.RemoveRRset([]dns.RR{record})
	update.Insert([]dns.RR{record})
	return s.send(record.Header().Name, update)
}

// claim adds ADDRESS to the name's set, renews its claim, and takes out addresses with stale claims.
func (s *server) claim(record dns.RR, ttl uint32, lease time.Duration) error {
	name := record.Header().Name
	now := time.Now().Unix()
	update := s.update(record)
	update.Insert([]dns.RR{record})
	claim := s.claimRecord(name, address(record), ttl, strconv.FormatInt(now, 10))
	update.RemoveRRset([]dns.RR{claim})
	update.Insert([]dns.RR{claim})
	if err := s.send(name, update); err != nil {
		return err
	}
	current, err := s.query(name, record.Header().Rrtype)
	if err != nil {
		return err
	}
	for _, other := range current {
		if address(other) == address(record) {
			continue
		}
		claims, err := s.query(s.claimName(name, address(other)), dns.TypeTXT)
		if err != nil {
			return err
		}
		seen := ""
		if len(claims) == 1 {
			seen = strings.Join(claims[0].(*dns.TXT).Txt, "")
		}
		if when, err := strconv.ParseInt(seen, 10, 64); err == nil && now-when <= int64(lease.Seconds()) {
			continue
		}
		if err := s.expire(other, seen); err != nil {
			return err
		}
		fmt.Printf("%s expired %s (claim %q older than %s)\n", strings.TrimSuffix(name, "."), address(other), seen, lease)
	}
	return nil
}

// expire takes an address with a stale claim out of the set, unless its claim was renewed since it was seen.
func (s *server) expire(record dns.RR, seen string) error {
	name := record.Header().Name
	claim := s.claimRecord(name, address(record), 0, seen)
	update := s.update(record)
	if seen == "" {
		update.RRsetNotUsed([]dns.RR{claim})
	} else {
		update.Used([]dns.RR{claim})
	}
	update.Remove([]dns.RR{record})
	update.RemoveRRset([]dns.RR{claim})
	err := s.send(name, update)
	var prerequisite *rcodeError
	if errors.As(err, &prerequisite) && (prerequisite.rcode == dns.RcodeNXRrset || prerequisite.rcode == dns.RcodeYXRrset) {
		return nil // renewed in between: its server is alive after all
	}
	return err
}

// release takes ADDRESS out of the name's set, with its claim.
func (s *server) release(record dns.RR) error {
	name := record.Header().Name
	update := s.update(record)
	update.Remove([]dns.RR{record})
	update.RemoveRRset([]dns.RR{s.claimRecord(name, address(record), 0, "")})
	return s.send(name, update)
}

func (s *server) claimName(name, address string) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(address) + "._claims." + name
}

func (s *server) claimRecord(name, address string, ttl uint32, text string) dns.RR {
	return &dns.TXT{
		Hdr: dns.RR_Header{Name: s.claimName(name, address), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl},
		Txt: []string{text},
	}
}

func address(record dns.RR) string {
	switch r := record.(type) {
	case *dns.A:
		return r.A.String()
	case *dns.AAAA:
		return r.AAAA.String()
	}
	return ""
}

// update starts a signed update of the zone that requires the record's name not to be an alias: an address
// added beside a CNAME would be ignored without an error (RFC 2136, 3.4.2.2).
func (s *server) update(record dns.RR) *dns.Msg {
	update := new(dns.Msg)
	update.SetUpdate(s.zone)
	alias := &dns.CNAME{Hdr: dns.RR_Header{Name: record.Header().Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET}}
	update.RRsetNotUsed([]dns.RR{alias})
	return update
}

type rcodeError struct {
	rcode   int
	message string
}

func (e *rcodeError) Error() string { return e.message }

// send sends a signed update and checks the answer: signed, and NOERROR. A refusal is explained by one signed
// query for the zone's SOA: the key, the zone, or else the zone's update policy.
func (s *server) send(name string, update *dns.Msg) error {
	update.SetTsig(s.keyName, s.algorithm, 300, time.Now().Unix())
	answer, err := s.exchange(name, update)
	if err != nil {
		return err
	}
	if answer.Rcode == dns.RcodeSuccess {
		return nil
	}
	what := strings.TrimSuffix(name, ".")
	rcode := dns.RcodeToString[answer.Rcode]
	hint := ""
	switch answer.Rcode {
	case dns.RcodeNotAuth, dns.RcodeRefused:
		state, reason := s.checkZone()
		switch state {
		case served:
			hint = fmt.Sprintf(": the server does not let key %s update this name: its update policy (BIND: "+
				"allow-update or update-policy; Knot: an acl with action update) must name the key", s.keyName)
		case unreachable:
		default:
			return fmt.Errorf("%s at %s: %s", what, s.address, s.explain(state, reason))
		}
	case dns.RcodeYXRrset:
		hint = ": the name is an alias (CNAME), and an address record cannot stand beside it: remove the CNAME " +
			"or choose another name"
	case dns.RcodeNotZone:
		hint = fmt.Sprintf(": the name is not in zone %s", s.zone)
	}
	return &rcodeError{answer.Rcode, fmt.Sprintf("updating %s at %s: the server answered %s%s", what, s.address,
		rcode, hint)}
}

// query asks for the name's records of one type, signed; NXDOMAIN and NODATA are no records.
func (s *server) query(name string, rtype uint16) ([]dns.RR, error) {
	query := new(dns.Msg)
	query.SetQuestion(name, rtype)
	query.SetTsig(s.keyName, s.algorithm, 300, time.Now().Unix())
	answer, err := s.exchange(name, query)
	if err != nil {
		return nil, err
	}
	if answer.Rcode != dns.RcodeSuccess && answer.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("reading %s at %s: the server answered %s", strings.TrimSuffix(name, "."), s.address,
			dns.RcodeToString[answer.Rcode])
	}
	var found []dns.RR
	for _, record := range answer.Answer {
		if strings.EqualFold(record.Header().Name, name) && record.Header().Rrtype == rtype {
			found = append(found, record)
		}
	}
	return found, nil
}

// zoneState is what a signed exchange with the server showed about the zone and the key.
type zoneState int

const (
	served      zoneState = iota // signed and authoritative: the key works, the server serves the zone
	answered                     // a signed answer (whose rcode says the rest)
	unreachable                  // no answer
	unknownKey                   // BADKEY
	badSecret                    // BADSIG
	badTime                      // BADTIME, or an answer signed at a time too far from ours
	unsigned                     // no valid signature by this key
	notServed                    // no authoritative SOA for the zone
)

// classify sorts the outcome of a signed exchange. A NOTAUTH answer reaches us as dns.ErrAuth, with the server's
// TSIG error (if any) in the answer's TSIG record.
func classify(answer *dns.Msg, err error) (zoneState, string) {
	switch {
	case errors.Is(err, dns.ErrAuth) && answer != nil:
		tsig := answer.IsTsig()
		if tsig == nil {
			return unsigned, "NOTAUTH"
		}
		switch tsig.Error {
		case dns.RcodeBadKey:
			return unknownKey, ""
		case dns.RcodeBadSig:
			return badSecret, ""
		case dns.RcodeBadTime:
			return badTime, ""
		}
		return answered, "" // NOTAUTH, signed: a refusal to explain (Knot answers so for a key its acl denies)
	case errors.Is(err, dns.ErrSig):
		return unsigned, err.Error()
	case errors.Is(err, dns.ErrTime):
		return badTime, ""
	case err != nil:
		return unreachable, err.Error()
	case answer.IsTsig() == nil:
		return unsigned, dns.RcodeToString[answer.Rcode]
	}
	return answered, ""
}

// exchange sends a signed message and returns the answer only if it carries a valid signature.
func (s *server) exchange(name string, message *dns.Msg) (*dns.Msg, error) {
	what := strings.TrimSuffix(name, ".")
	answer, _, err := s.client.Exchange(message, s.address)
	state, reason := classify(answer, err)
	switch state {
	case answered:
		return answer, nil
	case unreachable:
		return nil, fmt.Errorf("%s at %s: %w", what, s.address, err)
	}
	return nil, fmt.Errorf("%s at %s: %s", what, s.address, s.explain(state, reason))
}

// checkZone asks for the zone's SOA, signed: whether the server serves the zone and accepts the key.
func (s *server) checkZone() (zoneState, string) {
	query := new(dns.Msg)
	query.SetQuestion(s.zone, dns.TypeSOA)
	query.SetTsig(s.keyName, s.algorithm, 300, time.Now().Unix())
	answer, _, err := s.client.Exchange(query, s.address)
	state, reason := classify(answer, err)
	if state != answered {
		return state, reason
	}
	if answer.Rcode == dns.RcodeSuccess && answer.Authoritative {
		for _, record := range answer.Answer {
			if record.Header().Rrtype == dns.TypeSOA && strings.EqualFold(record.Header().Name, s.zone) {
				return served, ""
			}
		}
	}
	return notServed, "it answered " + dns.RcodeToString[answer.Rcode]
}

// explain says what a zone state means, naming the settings to look at.
func (s *server) explain(state zoneState, reason string) string {
	key := fmt.Sprintf("TSIG key %s (%s)", s.keyName, strings.TrimSuffix(s.algorithm, "."))
	switch state {
	case unknownKey:
		return fmt.Sprintf("the server does not know %s (it answered BADKEY): dns.rfc2136.keyName and "+
			"dns.rfc2136.algorithm must name a key the server has", key)
	case badSecret:
		return fmt.Sprintf("the server knows %s but the signature does not match (it answered BADSIG): "+
			"dnsTsigSecret is not that key's secret", key)
	case badTime:
		return "the server refused the signature's time (BADTIME): this node's clock and the server's differ by " +
			"more than five minutes"
	case unsigned:
		return fmt.Sprintf("the answer (%s) is not signed, so it cannot be trusted: the server did not recognise %s, "+
			"or something on the way answered in its place", reason, key)
	case notServed:
		return fmt.Sprintf("the server is not authoritative for zone %s: check dns.rfc2136.zone (the zone as the "+
			"server serves it) and dns.rfc2136.server; %s", s.zone, reason)
	}
	return reason
}
