package main

import (
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The members k3s's join (pkg/etcd/etcd.go) would stop at, for a node server2 at 10.0.0.12.
func TestBlocks(t *testing.T) {
	c := config{name: "server2", address: "10.0.0.12"}
	for _, tc := range []struct {
		name, peerURL string
		blocks        bool
	}{
		{"server2-1a2b3c4d", "https://10.0.0.12:2380", true},  // its stale member
		{"server2-1a2b3c4d", "https://10.0.0.99:2380", true},  // its name, another address: still a duplicate name
		{"server2", "https://10.0.0.99:2380", true},           // no suffix: k3s compares the whole name
		{"server1-1a2b3c4d", "https://10.0.0.12:2380", true},  // another name at its peer URL
		{"", "https://10.0.0.12:2380", false},                 // added, never started: k3s takes it for its own
		{"", "https://10.0.0.11:2380", false},                 // another server's join in progress
		{"server1-1a2b3c4d", "https://10.0.0.11:2380", false}, // another server
		{"server20-1a2b3c4d", "https://10.0.0.20:2380", false},
		{"server2-x-1a2b3c4d", "https://10.0.0.20:2380", false}, // node name server2-x
		{"s2-1a2b3c4d", "https://10.0.0.20:2380", false},
	} {
		m := &etcdserverpb.Member{ID: 1, Name: tc.name, PeerURLs: []string{tc.peerURL}}
		if got := c.blocks(m) != ""; got != tc.blocks {
			t.Errorf("member %q at %s: blocks=%v, want %v", tc.name, tc.peerURL, got, tc.blocks)
		}
	}
	noAddress := config{name: "server2"}
	if reason := noAddress.blocks(&etcdserverpb.Member{Name: "server1-1a2b3c4d", PeerURLs: []string{"https://10.0.0.12:2380"}}); reason != "" {
		t.Errorf("without -address a member is matched by name only, got %q", reason)
	}
}

func TestNodeName(t *testing.T) {
	for member, want := range map[string]string{
		"server2-1a2b3c4d":      "server2",
		"k3s-server-2-1a2b3c4d": "k3s-server-2",
		"server2":               "server2",
		"a-1a2b3c4d":            "a-1a2b3c4d", // k3s cuts only at a "-" past the second character
		"ab-1a2b3c4d":           "ab",
	} {
		if got := nodeName(member); got != want {
			t.Errorf("nodeName(%q) = %q, want %q", member, got, want)
		}
	}
}

func TestCheckRemoval(t *testing.T) {
	member := func(id uint64, learner bool) *etcdserverpb.Member {
		return &etcdserverpb.Member{ID: id, Name: fmt.Sprintf("server%d-1a2b3c4d", id), IsLearner: learner}
	}
	three := []*etcdserverpb.Member{member(1, false), member(2, false), member(3, false)}
	five := append([]*etcdserverpb.Member{member(4, false), member(5, false)}, three...)
	withLearner := append([]*etcdserverpb.Member{member(4, true)}, three...)
	for _, tc := range []struct {
		about     string
		members   []*etcdserverpb.Member
		alive     []uint64
		answering uint64
		refusal   string // "" when the removal of member 3 may go on
	}{
		{"3 members, the 2 others answer", three, []uint64{1, 2}, 1, ""},
		{"3 members, 1 other answers", three, []uint64{1}, 1, "of the 2 voting members left, 1 answer"},
		{"the stale member answers", three, []uint64{1, 2, 3}, 1, "it answers, so it is alive"},
		{"the stale member answered the list", three, []uint64{1, 2}, 3, "it answered the member list"},
		{"5 members, 3 others answer", five, []uint64{1, 2, 4}, 1, ""},
		{"5 members, 2 others answer", five, []uint64{1, 2}, 1, "of the 4 voting members left, 2 answer, fewer than the 3"},
		{"a learner does not vote", withLearner, []uint64{1, 2}, 1, ""},
	} {
		alive := map[uint64]bool{}
		for _, id := range tc.alive {
			alive[id] = true
		}
		err := checkRemoval(tc.members, map[uint64]bool{3: true}, alive, tc.answering, "?")
		switch {
		case tc.refusal == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.about, err)
		case tc.refusal != "" && (err == nil || !strings.Contains(err.Error(), tc.refusal)):
			t.Errorf("%s: got %v, want a refusal saying %q", tc.about, err, tc.refusal)
		}
	}
}
