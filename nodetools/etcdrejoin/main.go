// Command ephemeros-etcd-rejoin lets a k3s server whose embedded etcd data is gone join its cluster again.
//
// ephemeros servers run from RAM: a reboot loses a server's etcd data, but its etcd member stays listed in the
// cluster. k3s names a member <node name>-<8 hex> anew for each data directory, and its join (pkg/etcd/etcd.go,
// join) stops with "duplicate node name found" while a member of another name carries its node name. Run before
// k3s starts, this program asks the other servers' etcd for the member list and, through the first that answers,
// removes the members that would block this node's join:
//
//   - a member whose name, cut at its last "-" as k3s cuts it, is this node's name;
//   - with -address, a named member whose peer URL is at this node's address: k3s would add itself as a member at
//     that same peer URL, which etcd refuses ("Peer URLs already exists").
//
// A member without a name at this node's address (added, never started: a join cut short) is kept, as k3s takes
// it for its own and starts etcd into it.
//
// A removal never costs the cluster its quorum: it is refused when a member to remove answers (it is alive, so it
// is not this node's stale member: another machine has its name or address), when it would leave fewer answering
// voting members than a majority of the remaining voting members, or when the member that answered the list is one
// to remove. It then writes a k3s config drop-in (k3s reads <config file>.d/*.yaml, e.g.
// /etc/rancher/k3s/config.yaml.d/, after the config file) that says `server: https://<that peer>:<api port>`.
//
// Peers are tried until -wait has passed. If none could even be reached (no TCP connection), -may-init writes
// `cluster-init: true` instead: this server starts a new cluster. A peer that was reached but failed (TLS, no
// quorum) means a cluster may exist: the program then exits 1, as it does without -may-init, naming each peer's
// failure, so that systemd tries again.
//
//	ephemeros-etcd-rejoin -name NODE -peers HOST[:PORT],... -cacert FILE -cert FILE -key FILE -dropin FILE
//	    [-address IP] [-api-port 6443] [-may-init] [-wait 2m] [-timeout 5s] [-dry-run]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

const clientPort = "2379"

type config struct {
	name, address, dropin string
	peers                 []string // host:port
	apiPort               int
	mayInit, dryRun       bool
	wait, timeout         time.Duration
	tls                   *tls.Config
}

// refusal is an answer that trying again would not change.
type refusal struct{ reason string }

func (r refusal) Error() string { return r.reason }

// unreachable is a peer that no TCP connection reached.
type unreachable struct{ err error }

func (u unreachable) Error() string { return "unreachable: " + u.err.Error() }

func main() {
	log.SetFlags(0)
	log.SetPrefix("ephemeros-etcd-rejoin: ")
	var c config
	var peers, cacert, cert, key string
	flag.StringVar(&c.name, "name", "", "this node's k3s node name")
	flag.StringVar(&c.address, "address", "", "this node's address (k3s's node IP): also remove named members whose peer URL is at it")
	flag.StringVar(&peers, "peers", "", "the other servers, comma-separated HOST or HOST:PORT (client port "+clientPort+")")
	flag.StringVar(&cacert, "cacert", "", "the etcd server CA file (it may hold the chain)")
	flag.StringVar(&cert, "cert", "", "the etcd client certificate file")
	flag.StringVar(&key, "key", "", "the etcd client key file")
	flag.StringVar(&c.dropin, "dropin", "", "the k3s config drop-in to write, e.g. /etc/rancher/k3s/config.yaml.d/50-etcd.yaml")
	flag.IntVar(&c.apiPort, "api-port", 6443, "the servers' k3s API port")
	flag.BoolVar(&c.mayInit, "may-init", false, "start a new cluster (cluster-init) when no peer can be reached within -wait")
	flag.DurationVar(&c.wait, "wait", 2*time.Minute, "how long to try the peers (then -may-init starts a new cluster, else exit 1)")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Second, "how long to wait for one peer")
	flag.BoolVar(&c.dryRun, "dry-run", false, "list the members and say what would be removed; remove and write nothing")
	flag.Parse()
	for _, peer := range strings.Split(peers, ",") {
		if peer = strings.TrimSpace(peer); peer != "" {
			if _, _, err := net.SplitHostPort(peer); err != nil {
				peer = net.JoinHostPort(strings.Trim(peer, "[]"), clientPort)
			}
			c.peers = append(c.peers, peer)
		}
	}
	if c.name == "" || len(c.peers) == 0 || cacert == "" || cert == "" || key == "" || (c.dropin == "" && !c.dryRun) || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: ephemeros-etcd-rejoin -name NODE -peers HOST[:PORT],... -cacert FILE -cert FILE -key FILE -dropin FILE [flags]")
		flag.PrintDefaults()
		os.Exit(2)
	}
	var err error
	if c.tls, err = loadTLS(cacert, cert, key); err == nil {
		err = run(c)
	}
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func loadTLS(cacert, cert, key string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("client certificate %s, key %s: %w", cert, key, err)
	}
	pem, err := os.ReadFile(cacert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", cacert)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

func run(c config) error {
	deadline := time.Now().Add(c.wait)
	failures := map[string]error{}
	reached := false
	for {
		for _, peer := range c.peers {
			err := c.rejoinThrough(peer)
			if err == nil {
				return nil
			}
			var r refusal
			if errors.As(err, &r) {
				return err
			}
			if !errors.As(err, new(unreachable)) {
				reached = true
			}
			if last := failures[peer]; last == nil || last.Error() != err.Error() {
				log.Printf("%s: %v", peer, err)
			}
			failures[peer] = err
		}
		if !time.Now().Before(deadline) {
			break
		}
		time.Sleep(min(time.Second, time.Until(deadline)))
	}
	var tried []string
	for _, peer := range c.peers {
		tried = append(tried, fmt.Sprintf("%s (%v)", peer, failures[peer]))
	}
	summary := fmt.Sprintf("no peer answered within %s: %s", c.wait, strings.Join(tried, "; "))
	switch {
	case !c.mayInit:
		return errors.New(summary)
	case reached:
		return fmt.Errorf("%s; not starting a new cluster, since a peer was reached and a cluster may exist", summary)
	case c.dryRun:
		log.Printf("%s; would write cluster-init: true", summary)
		return nil
	}
	log.Printf("%s; starting a new cluster", summary)
	return writeDropin(c.dropin, "cluster-init: true\n")
}

// rejoinThrough removes what blocks this node's join through the etcd at peer, and writes the drop-in.
func (c config) rejoinThrough(peer string) error {
	if err := c.probe(peer); err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{"https://" + peer},
		TLS:         c.tls,
		DialTimeout: c.timeout,
		// Dial before the first call, and say why a dial failed (a TLS alert, say), not only that time ran out.
		DialOptions: []grpc.DialOption{grpc.WithBlock(), grpc.WithReturnConnectionError()},
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return explainTLS(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	list, err := cli.MemberList(ctx) // linearizable: only a member of a cluster with quorum answers
	if err != nil {
		return fmt.Errorf("member list: %w", explainTLS(err))
	}
	answering := list.Header.MemberId
	log.Printf("%s (member %x) lists %d members:", peer, answering, len(list.Members))
	stale := map[uint64]bool{}
	for _, m := range list.Members {
		if reason := c.blocks(m); reason != "" {
			log.Printf("  %s: blocks the join, %s", describe(m), reason)
			stale[m.ID] = true
		} else {
			log.Printf("  %s", describe(m))
		}
	}
	if err := c.mayRemove(cli, list.Members, stale, answering); err != nil {
		return err
	}
	ctx, cancel = context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	for _, m := range list.Members {
		if !stale[m.ID] {
			continue
		}
		if c.dryRun {
			log.Printf("would remove %s", describe(m))
			continue
		}
		log.Printf("removing %s", describe(m))
		_, err := cli.MemberRemove(ctx, m.ID)
		if errors.Is(err, rpctypes.ErrMemberNotFound) || errors.Is(err, rpctypes.ErrGRPCMemberNotFound) {
			err = nil // removed meanwhile
		}
		if err != nil {
			return fmt.Errorf("remove member %x: %w", m.ID, err)
		}
	}
	host, _, _ := net.SplitHostPort(peer)
	server := "https://" + net.JoinHostPort(host, strconv.Itoa(c.apiPort))
	if c.dryRun {
		log.Printf("would write server: %s", server)
		return nil
	}
	log.Printf("joining through %s", server)
	return writeDropin(c.dropin, "server: "+server+"\n")
}

// probe says whether peer can be reached, and whether it accepts the client certificate. gRPC may not say why it
// failed: under TLS 1.3 a server refuses a client certificate after the handshake, and gRPC's first write can fail
// ("broken pipe") before its reader gets the server's alert. So write once, then read what the peer answers: an
// HTTP/2 client preface with empty SETTINGS, to which an etcd server answers with its SETTINGS, or its TLS alert.
func (c config) probe(peer string) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	raw, err := new(net.Dialer).DialContext(ctx, "tcp", peer)
	if err != nil {
		return unreachable{err}
	}
	host, _, _ := net.SplitHostPort(peer)
	config := c.tls.Clone()
	config.ServerName, config.NextProtos = host, []string{"h2"}
	conn := tls.Client(raw, config)
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		return explainTLS(err)
	}
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		return explainTLS(err)
	}
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return explainTLS(err)
	}
	return nil
}

// explainTLS adds to a TLS failure which side's certificate it is about (gRPC passes on only its text).
func explainTLS(err error) error {
	text := err.Error()
	switch {
	case strings.Contains(text, "x509:"):
		return fmt.Errorf("TLS: the peer's certificate does not verify with -cacert: %w", err)
	case strings.Contains(text, "remote error: tls:"):
		return fmt.Errorf("TLS: the peer refuses the client certificate (is it signed by the etcd server CA?): %w", err)
	}
	return err
}

// blocks says why k3s, joining as a node of this name at this address, would stop at member m; "" if it would not.
func (c config) blocks(m *etcdserverpb.Member) string {
	if m.Name == "" {
		return "" // k3s takes an unnamed member at its own address for itself, and passes over the others
	}
	if nodeName(m.Name) == c.name {
		return fmt.Sprintf("its node name is %s (k3s: duplicate node name found)", c.name)
	}
	for _, peerURL := range m.PeerURLs {
		if c.address != "" && sameHost(hostname(peerURL), c.address) {
			return fmt.Sprintf("its peer URL is at %s, where k3s adds this node (etcd: Peer URLs already exists)", c.address)
		}
	}
	return ""
}

// nodeName is the node name that k3s's join reads from a member name: what comes before its last "-", when that
// is past the second character; else the whole name.
func nodeName(member string) string {
	if i := strings.LastIndex(member, "-"); i > 1 {
		return member[:i]
	}
	return member
}

// mayRemove refuses removals that cost the cluster its quorum, or that take a live member for a stale one.
func (c config) mayRemove(cli *clientv3.Client, members []*etcdserverpb.Member, stale map[uint64]bool, answering uint64) error {
	if len(stale) == 0 {
		return nil
	}
	alive := map[uint64]bool{}
	for _, m := range members {
		alive[m.ID] = c.answers(cli, m)
	}
	return checkRemoval(members, stale, alive, answering, c.suspect())
}

// checkRemoval refuses to remove the stale members if one of them answered the member list or answers now, or if
// fewer than a majority of the voting members left would answer.
func checkRemoval(members []*etcdserverpb.Member, stale, alive map[uint64]bool, answering uint64, suspect string) error {
	if stale[answering] {
		return refusal{fmt.Sprintf("refusing to remove member %x: it answered the member list, so it is alive and "+
			"not this node's stale member (%s)", answering, suspect)}
	}
	voters, answered := 0, 0
	for _, m := range members {
		if stale[m.ID] && alive[m.ID] {
			return refusal{fmt.Sprintf("refusing to remove %s: it answers, so it is alive and not this node's stale "+
				"member (%s)", describe(m), suspect)}
		}
		if stale[m.ID] || m.IsLearner {
			continue
		}
		voters++
		if alive[m.ID] {
			answered++
		}
	}
	if quorum := voters/2 + 1; answered < quorum {
		return refusal{fmt.Sprintf("refusing to remove %d member(s): of the %d voting members left, %d answer, "+
			"fewer than the %d a quorum needs", len(stale), voters, answered, quorum)}
	}
	return nil
}

// suspect asks what makes a live member look like this node's.
func (c config) suspect() string {
	if c.address == "" {
		return fmt.Sprintf("does another machine use node name %s?", c.name)
	}
	return fmt.Sprintf("does another machine use node name %s or address %s?", c.name, c.address)
}

// answers says whether a client URL of m reports a status with a leader and without errors, as k3s's
// getETCDStatus judges a member's health.
func (c config) answers(cli *clientv3.Client, m *etcdserverpb.Member) bool {
	for _, endpoint := range m.ClientURLs {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		status, err := cli.Status(ctx, endpoint)
		cancel()
		if err == nil && status.Leader != 0 && len(status.Errors) == 0 {
			return true
		}
	}
	return false
}

func describe(m *etcdserverpb.Member) string {
	role := "voting"
	if m.IsLearner {
		role = "learner"
	}
	return fmt.Sprintf("member %x name=%q peer URLs=%s (%s)", m.ID, m.Name, strings.Join(m.PeerURLs, ","), role)
}

func hostname(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func sameHost(a, b string) bool {
	ipA, ipB := net.ParseIP(a), net.ParseIP(b)
	return a == b || (ipA != nil && ipA.Equal(ipB))
}

// writeDropin replaces path with content atomically, mode 0600.
func writeDropin(path, content string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".ephemeros-etcd-rejoin-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	log.Printf("wrote %s: %s", path, strings.TrimSpace(content))
	return nil
}
