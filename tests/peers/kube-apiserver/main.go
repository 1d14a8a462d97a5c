// Command kube-apiserver is meho's Kubernetes test peer: the real kube-apiserver (linked from
// k8s.io/kubernetes) with a real etcd embedded in the same process, on loopback.
//
//	kube-apiserver --etcd-data-dir=DIR [kube-apiserver flags...]
//	kube-apiserver yaml2json < manifest.yaml   # every document as one JSON array
//
// etcd listens on two free loopback ports and is added as --etcd-servers unless the caller gave
// one. The process exits when its parent does, so a killed test run leaves nothing behind.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

const dataDirFlag = "--etcd-data-dir="

func main() {
	if len(os.Args) > 1 && os.Args[1] == "yaml2json" {
		if err := yamlToJSON(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "yaml2json:", err)
			os.Exit(1)
		}
		return
	}

	var dataDir string
	var args []string
	haveEtcd := false
	for _, a := range os.Args[1:] {
		switch {
		case strings.HasPrefix(a, dataDirFlag):
			dataDir = strings.TrimPrefix(a, dataDirFlag)
		case strings.HasPrefix(a, "--etcd-servers="):
			haveEtcd = true
			args = append(args, a)
		default:
			args = append(args, a)
		}
	}
	if dataDir == "" {
		fmt.Fprintln(os.Stderr, "usage: kube-apiserver --etcd-data-dir=DIR [kube-apiserver flags...]")
		os.Exit(2)
	}

	go exitWithParent()

	etcd, clientURL, err := startEtcd(dataDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "embedded etcd:", err)
		os.Exit(1)
	}
	if !haveEtcd {
		args = append(args, "--etcd-servers="+clientURL)
	}

	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(args)
	code := cli.Run(cmd)
	etcd.Close()
	os.Exit(code)
}

// exitWithParent ends the process once it is re-parented (the test process that started it died
// without killing it).
func exitWithParent() {
	parent := os.Getppid()
	for {
		time.Sleep(500 * time.Millisecond)
		if os.Getppid() != parent {
			fmt.Fprintln(os.Stderr, "parent process gone, exiting")
			os.Exit(1)
		}
	}
}

// freeLoopbackURL returns http://127.0.0.1:PORT for a port that was free a moment ago.
func freeLoopbackURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return url.URL{}, err
	}
	return url.URL{Scheme: "http", Host: addr}, nil
}

// startEtcd starts a single-member etcd in dataDir on free loopback ports, waits until it serves,
// and returns it with its client URL. A port taken between the pick and the bind is retried.
func startEtcd(dataDir string) (*embed.Etcd, string, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		client, err := freeLoopbackURL()
		if err != nil {
			return nil, "", err
		}
		peer, err := freeLoopbackURL()
		if err != nil {
			return nil, "", err
		}
		cfg := embed.NewConfig()
		cfg.Name = "meho-test"
		cfg.Dir = dataDir
		cfg.ListenClientUrls = []url.URL{client}
		cfg.AdvertiseClientUrls = []url.URL{client}
		cfg.ListenPeerUrls = []url.URL{peer}
		cfg.AdvertisePeerUrls = []url.URL{peer}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		cfg.LogLevel = "error"
		cfg.LogOutputs = []string{"stderr"}
		// A throw-away store for tests: durability is not the point, start and write speed are.
		cfg.UnsafeNoFsync = true
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			lastErr = err
			_ = os.RemoveAll(dataDir + "/member")
			continue
		}
		select {
		case <-e.Server.ReadyNotify():
			return e, client.String(), nil
		case err := <-e.Err():
			e.Close()
			return nil, "", err
		case <-time.After(60 * time.Second):
			e.Close()
			return nil, "", errors.New("etcd did not become ready within 60s")
		}
	}
	return nil, "", lastErr
}

// yamlToJSON converts a multi-document YAML (or JSON) stream into one JSON array of its non-empty
// documents, with the YAML library Kubernetes itself uses.
func yamlToJSON(in io.Reader, out io.Writer) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(in, 4096)
	docs := []json.RawMessage{}
	for {
		var doc json.RawMessage
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if len(doc) == 0 || string(doc) == "null" {
			continue
		}
		docs = append(docs, doc)
	}
	return json.NewEncoder(out).Encode(docs)
}
