// Command pulumi-language-python is a small Python language host for the Pulumi engine.
//
// Pulumi's own Python language host lives in a Go module that is not published with version tags, so it cannot
// be built from the Go module proxy. This host implements the part of the LanguageRuntime protocol that running a
// Python program needs: it starts the SDK's `pulumi-language-python-exec` script (installed next to this binary)
// with the project's virtualenv Python, passing the engine's run request on its command line and the stack
// configuration in the environment, exactly as the SDK's exec script expects.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is set at build time to the Pulumi SDK version this host serves.
var version = "dev"

// exitCodeUserActionable is the exec script's exit code after it has shown the user an actionable error.
const exitCodeUserActionable = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	execScript    string
}

func main() {
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	h := &host{execScript: filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")}
	if args := positionalArgs(os.Args[1:]); len(args) > 0 {
		h.engineAddress = args[len(args)-1]
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(s, h)
			return nil
		},
	})
	if err != nil {
		fail(fmt.Errorf("could not start the language host's RPC server: %w", err))
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fail(err)
	}
}

// positionalArgs drops the `-flag=value` style options the engine may pass before the engine address.
func positionalArgs(args []string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			out = append(out, a)
		}
	}
	return out
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

func (h *host) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.GetEngineAddress()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// GetRequiredPlugins reports none: the engine then loads each provider when the program first uses it.
func (h *host) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) GetProgramDependencies(
	context.Context, *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *host) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(_ context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	python, err := pythonFor(req.GetInfo())
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(python, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", python, err)
	}
	return &pulumirpc.AboutResponse{
		Executable: python,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "Python "),
	}, nil
}

// InstallDependencies creates the virtualenv when it is missing and installs requirements.txt into it.
func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest,
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	info := req.GetInfo()
	venv := virtualenvDir(info)
	if venv == "" {
		return status.Error(codes.FailedPrecondition, "set runtime.options.virtualenv in Pulumi.yaml")
	}
	out := &streamWriter{stream: stream}
	steps := [][]string{}
	if _, err := os.Stat(filepath.Join(venv, "bin", "python")); err != nil {
		steps = append(steps, []string{"python3", "-m", "venv", venv})
	}
	requirements := filepath.Join(info.GetProgramDirectory(), "requirements.txt")
	steps = append(steps, []string{filepath.Join(venv, "bin", "python"), "-m", "pip", "install", "-r", requirements})
	for _, step := range steps {
		cmd := exec.Command(step[0], step[1:]...)
		cmd.Dir = info.GetProgramDirectory()
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(step, " "), err)
		}
	}
	return nil
}

type streamWriter struct {
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if err := w.stream.Send(&pulumirpc.InstallDependenciesResponse{Stdout: p}); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	python, err := pythonFor(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	env, err := runEnvironment(req, python)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, python, append([]string{"-u", h.execScript}, h.execArgs(req)...)...)
	cmd.Dir = req.GetPwd()
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == exitCodeUserActionable:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode())}, nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run %s: %v", python, err)}, nil
	}
}

// execArgs builds the command line of the SDK's exec script from the run request.
func (h *host) execArgs(req *pulumirpc.RunRequest) []string {
	var args []string
	add := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("organization", req.GetOrganization())
	add("root_directory", req.GetInfo().GetRootDirectory())

	program := req.GetInfo().GetProgramDirectory()
	if entry := req.GetInfo().GetEntryPoint(); entry != "" && entry != "." {
		program = filepath.Join(program, entry)
	}
	if program == "" {
		program = "."
	}
	args = append(args, program)
	return append(args, req.GetArgs()...)
}

// runEnvironment passes the stack configuration the way the SDK reads it and activates the virtualenv.
func runEnvironment(req *pulumirpc.RunRequest, python string) ([]string, error) {
	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(nonNil(req.GetConfigSecretKeys()))
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PYTHONHOME=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	if venv := filepath.Dir(filepath.Dir(python)); filepath.Base(filepath.Dir(python)) == "bin" {
		env = append(env, "VIRTUAL_ENV="+venv, "PATH="+filepath.Dir(python)+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	return env, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// virtualenvDir is the absolute path of Pulumi.yaml's runtime.options.virtualenv, or "" when it is not set.
func virtualenvDir(info *pulumirpc.ProgramInfo) string {
	opts := info.GetOptions().GetFields()
	v, ok := opts["virtualenv"]
	if !ok {
		return ""
	}
	dir := v.GetStringValue()
	if dir == "" || filepath.IsAbs(dir) {
		return dir
	}
	return filepath.Join(info.GetRootDirectory(), dir)
}

// pythonFor picks the virtualenv's Python when the project names one, else python3 from PATH.
func pythonFor(info *pulumirpc.ProgramInfo) (string, error) {
	if venv := virtualenvDir(info); venv != "" {
		python := filepath.Join(venv, "bin", "python")
		if _, err := os.Stat(python); err != nil {
			return "", fmt.Errorf(
				"the virtualenv %q named in Pulumi.yaml does not exist; create it with `make venv` "+
					"(or `python3 -m venv %s && %s/bin/pip install -r requirements.txt`)", venv, venv, venv)
		}
		return python, nil
	}
	if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
		return exec.LookPath(cmd)
	}
	return exec.LookPath("python3")
}
