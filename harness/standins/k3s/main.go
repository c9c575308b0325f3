// Command k3s is a stand-in for k3s in ephemeros's whole-node tests: k3s itself cannot be built where the tests
// run. Served under k3s's name, downloaded and checked by the node's Ignition like the real one, it is started by
// the node's k3s unit as k3s would be, and reports what it was given so that the tests can check what a real
// k3s would start with.
//
//	k3s server|agent [flags]   records its arguments, environment, config files and the files k3s reads,
//	                           as one line on the second serial port (/dev/ttyS1), then tells systemd it is
//	                           ready (k3s.service is Type=notify) and runs until stopped
//	k3s kubectl ... get --raw=/readyz   (also as kubectl) succeeds once the server is ready
//	k3s --version              "k3s version stand-in"
//
// It never reports a secret's value: environment values and file contents are reported as sha256 digests (the
// k3s config file, public in the node's Ignition, is reported as it is). Like a starting k3s, it is not healthy
// at first: the server's API and the agent's kubelet (127.0.0.1:10248/healthz) answer as ready readyAfter
// after the start.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	marker     = "EPHEMEROS-K3S-STAND-IN"
	reportPort = "/dev/ttyS1"
	readyFile  = "/run/k3s-stand-in/ready"
	readyAfter = 40 * time.Second
	tlsDir     = "/var/lib/rancher/k3s/server/tls"
	nodePass   = "/etc/rancher/node/password"
	secretsDir = "/secrets"
)

// file is what the record says of one file: never its content, its digest.
type file struct {
	Mode   string `json:"mode"`
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Sha256 string `json:"sha256"`
}

type record struct {
	Args      []string          `json:"args"`
	Env       map[string]string `json:"env"` // name -> sha256 of the value
	Config    string            `json:"config"`
	Dropins   map[string]string `json:"dropins"`
	Files     map[string]file   `json:"files"`
	Mounts    map[string]string `json:"mounts"` // mount point -> "source fstype options"
	Labels    map[string]string `json:"labels"` // /dev/disk/by-label/<label> -> the device it points at
	OSRelease string            `json:"osRelease"`
	Hostname  string            `json:"hostname"`
	Uptime    string            `json:"uptime"`
	BootID    string            `json:"bootId"`
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func describe(path string) (file, bool) {
	info, err := os.Stat(path)
	if err != nil || !info.Mode().IsRegular() {
		return file{}, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return file{}, false
	}
	st := info.Sys().(*syscall.Stat_t)
	return file{fmt.Sprintf("%04o", info.Mode().Perm()), st.Uid, st.Gid, digest(data)}, true
}

func read(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

func configPath(args []string) string {
	for i, arg := range args {
		if arg == "--config" && i+1 < len(args) {
			return args[i+1]
		}
		if strings.HasPrefix(arg, "--config=") {
			return strings.TrimPrefix(arg, "--config=")
		}
	}
	return "/etc/rancher/k3s/config.yaml"
}

func collect(args []string) record {
	r := record{
		Args:    args,
		Env:     map[string]string{},
		Dropins: map[string]string{},
		Files:   map[string]file{},
		Mounts:  map[string]string{},
		Labels:  map[string]string{},
	}
	for _, pair := range os.Environ() {
		name, value, _ := strings.Cut(pair, "=")
		r.Env[name] = digest([]byte(value))
	}
	config := configPath(args)
	r.Config = read(config)
	dropins, _ := filepath.Glob(config + ".d/*.yaml")
	for _, path := range dropins {
		r.Dropins[path] = read(path)
	}
	paths := []string{nodePass}
	if ca := os.Getenv("K3S_DATASTORE_CAFILE"); ca != "" {
		paths = append(paths, ca)
	}
	_ = filepath.WalkDir(tlsDir, func(path string, entry fs.DirEntry, err error) error {
		if err == nil && !entry.IsDir() {
			paths = append(paths, path)
		}
		return nil
	})
	entries, _ := os.ReadDir(secretsDir)
	for _, entry := range entries {
		paths = append(paths, filepath.Join(secretsDir, entry.Name()))
	}
	for _, path := range paths {
		if f, ok := describe(path); ok {
			r.Files[path] = f
		}
	}
	if info, err := os.Stat(secretsDir); err == nil {
		st := info.Sys().(*syscall.Stat_t)
		r.Files[secretsDir+"/"] = file{fmt.Sprintf("%04o", info.Mode().Perm()), st.Uid, st.Gid, ""}
	}
	mounts, _ := os.Open("/proc/self/mounts")
	if mounts != nil {
		scanner := bufio.NewScanner(mounts)
		for scanner.Scan() {
			fields := strings.Fields(scanner.Text())
			if len(fields) >= 4 {
				r.Mounts[fields[1]] = fields[0] + " " + fields[2] + " " + fields[3]
			}
		}
		mounts.Close()
	}
	labels, _ := filepath.Glob("/dev/disk/by-label/*")
	for _, link := range labels {
		if target, err := filepath.EvalSymlinks(link); err == nil {
			r.Labels[filepath.Base(link)] = target
		}
	}
	r.OSRelease = read("/etc/os-release")
	r.Hostname = strings.TrimSpace(read("/etc/hostname"))
	r.Uptime = strings.Fields(read("/proc/uptime") + " ?")[0]
	r.BootID = strings.TrimSpace(read("/proc/sys/kernel/random/boot_id"))
	return r
}

func report(r record) {
	data, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k3s stand-in:", err)
		return
	}
	line := fmt.Sprintf("%s %s\n", marker, base64.StdEncoding.EncodeToString(data))
	if port, err := os.OpenFile(reportPort, os.O_WRONLY, 0); err == nil {
		_, _ = port.WriteString(line)
		port.Close()
	} else {
		fmt.Fprintln(os.Stderr, "k3s stand-in: cannot report on", reportPort+":", err)
	}
	names := make([]string, 0, len(r.Env))
	for name := range r.Env {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Printf("k3s stand-in: %s started with %s; environment %s\n", r.Args[0], strings.Join(r.Args, " "),
		strings.Join(names, " "))
}

// notify tells systemd that the service is ready, as k3s does (sd_notify READY=1).
func notify() {
	socket := os.Getenv("NOTIFY_SOCKET")
	if socket == "" {
		return
	}
	if strings.HasPrefix(socket, "@") {
		socket = "\x00" + socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "k3s stand-in: cannot notify systemd:", err)
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("READY=1"))
}

func ready() bool {
	_, err := os.Stat(readyFile)
	return err == nil
}

func run(role string, args []string) {
	report(collect(append([]string{role}, args...)))
	os.Remove(readyFile)
	notify()
	if role == "agent" {
		http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			if !ready() {
				http.Error(w, "kubelet is starting (k3s stand-in)", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		go func() { _ = http.ListenAndServe("127.0.0.1:10248", nil) }()
	}
	go func() {
		time.Sleep(readyAfter)
		_ = os.MkdirAll(filepath.Dir(readyFile), 0o755)
		_ = os.WriteFile(readyFile, nil, 0o644)
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}

func kubectl(args []string) int {
	for _, arg := range args {
		if arg == "--raw=/readyz" {
			if ready() {
				fmt.Println("ok")
				return 0
			}
			fmt.Fprintln(os.Stderr, "the server is starting (k3s stand-in)")
			return 1
		}
	}
	fmt.Fprintln(os.Stderr, "k3s stand-in: kubectl", strings.Join(args, " "), "is not supported")
	return 1
}

func main() {
	args := os.Args[1:]
	switch name := filepath.Base(os.Args[0]); {
	case name == "kubectl":
		os.Exit(kubectl(args))
	case name != "k3s":
		fmt.Fprintln(os.Stderr, "k3s stand-in:", name, "is not supported")
		os.Exit(1)
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: k3s server|agent|kubectl|--version")
		os.Exit(1)
	}
	switch args[0] {
	case "--version", "-v", "version":
		fmt.Println("k3s version stand-in (ephemeros tests)")
	case "kubectl":
		os.Exit(kubectl(args[1:]))
	case "server", "agent":
		run(args[0], args[1:])
	default:
		fmt.Fprintln(os.Stderr, "k3s stand-in:", args[0], "is not supported")
		os.Exit(1)
	}
}
