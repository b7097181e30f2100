// Command goverify checks tidechain receipts and consistency proofs with the Go
// reference implementations of signed notes and transparency logs
// (golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog), and nothing of
// tidechain's own. It exists so that tidechain's formats are checked by code that
// nobody on the project wrote.
//
// Usage:
//
//	goverify receipt RECEIPT_FILE TRUST_FILE
//	goverify consistency SIZE1 ROOT1 SIZE2 ROOT2 [PROOF_HASH...]
//
// Hashes are standard base64. On success it prints one line starting with "OK" and
// exits 0; otherwise it prints the reason and exits 1 (2 for bad usage).
//
// Build offline with Debian's packages (golang-go, golang-golang-x-mod-dev), which
// install x/mod as GOPATH source under /usr/share/gocode, so build in GOPATH mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$(mktemp -d) \
//	    go build -o /tmp/goverify ./tools/goverify
//
// (run from the repository root). With a non-Debian Go, point GOPATH at any
// directory holding src/golang.org/x/mod.
package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const receiptHeader = "c2sp.org/tlog-proof@v1"

// trust is what a tidechain trust file says: validator keys, quorum, optional origin.
type trust struct {
	verifiers []note.Verifier
	quorum    int
	origin    string
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var out string
	var err error
	switch os.Args[1] {
	case "receipt":
		if len(os.Args) != 4 {
			usage()
		}
		out, err = verifyReceiptFiles(os.Args[2], os.Args[3])
	case "consistency":
		if len(os.Args) < 6 {
			usage()
		}
		out, err = verifyConsistency(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
	fmt.Println(out)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: goverify receipt RECEIPT_FILE TRUST_FILE")
	fmt.Fprintln(os.Stderr, "       goverify consistency SIZE1 ROOT1 SIZE2 ROOT2 [PROOF_HASH...]")
	os.Exit(2)
}

// parseTrust reads the trust file grammar of docs/formats.md.
func parseTrust(text string) (*trust, error) {
	t := &trust{}
	seenQuorum := false
	seenKey := map[string]bool{} // names and public keys: none may count twice

	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		switch {
		case fields[0] == "quorum" && len(fields) == 2 && !seenQuorum:
			k, err := strconv.Atoi(fields[1])
			if err != nil || strconv.Itoa(k) != fields[1] {
				return nil, fmt.Errorf("trust line %d: bad quorum", i+1)
			}
			t.quorum, seenQuorum = k, true
		case fields[0] == "origin" && len(fields) >= 2 && t.origin == "":
			t.origin = strings.TrimSpace(strings.TrimPrefix(line, "origin"))
		case strings.Contains(fields[0], "+") && len(fields) == 1:
			v, err := note.NewVerifier(fields[0])
			if err != nil {
				return nil, fmt.Errorf("trust line %d: %v", i+1, err)
			}
			parts := strings.SplitN(fields[0], "+", 3)
			if seenKey["name "+parts[0]] || seenKey["key "+parts[2]] {
				return nil, fmt.Errorf("trust line %d: validator listed twice", i+1)
			}
			seenKey["name "+parts[0]], seenKey["key "+parts[2]] = true, true
			t.verifiers = append(t.verifiers, v)
		default:
			return nil, fmt.Errorf("trust line %d: not understood", i+1)
		}
	}
	n := len(t.verifiers)
	if n == 0 {
		return nil, errors.New("trust file lists no validator key")
	}
	if !seenQuorum {
		t.quorum = n - (n-1)/3
	}
	if t.quorum < 1 || t.quorum > n {
		return nil, fmt.Errorf("quorum %d out of range for %d validators", t.quorum, n)
	}
	return t, nil
}

func decodeHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != tlog.HashSize {
		return h, fmt.Errorf("malformed hash %q", s)
	}
	copy(h[:], raw)
	return h, nil
}

func parseDecimal(s, what string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("malformed %s %q", what, s)
	}
	return n, nil
}

// receipt is a parsed c2sp.org/tlog-proof@v1 file.
type receipt struct {
	extra      []byte
	hasExtra   bool
	index      int64
	proof      tlog.RecordProof
	checkpoint []byte
}

func parseReceipt(data []byte) (*receipt, error) {
	head, cp, found := bytes.Cut(data, []byte("\n\n"))
	if !found {
		return nil, errors.New("receipt has no blank line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != receiptHeader {
		return nil, errors.New("receipt header missing")
	}
	lines = lines[1:]
	r := &receipt{checkpoint: cp}
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		extra, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[0], "extra "))
		if err != nil {
			return nil, errors.New("malformed extra line")
		}
		r.extra, r.hasExtra = extra, true
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return nil, errors.New("receipt has no index line")
	}
	index, err := parseDecimal(strings.TrimPrefix(lines[0], "index "), "index")
	if err != nil {
		return nil, err
	}
	r.index = index
	for _, line := range lines[1:] {
		h, err := decodeHash(line)
		if err != nil {
			return nil, err
		}
		r.proof = append(r.proof, h)
	}
	return r, nil
}

// parseCheckpoint reads origin, size and root from a verified note text.
func parseCheckpoint(text string) (origin string, size int64, root tlog.Hash, err error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || lines[0] == "" {
		return "", 0, root, errors.New("malformed checkpoint")
	}
	if size, err = parseDecimal(lines[1], "checkpoint size"); err != nil {
		return "", 0, root, err
	}
	if root, err = decodeHash(lines[2]); err != nil {
		return "", 0, root, err
	}
	return lines[0], size, root, nil
}

func verifyReceiptFiles(receiptPath, trustPath string) (string, error) {
	trustText, err := os.ReadFile(trustPath)
	if err != nil {
		return "", err
	}
	t, err := parseTrust(string(trustText))
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(receiptPath)
	if err != nil {
		return "", err
	}
	r, err := parseReceipt(data)
	if err != nil {
		return "", err
	}
	n, err := note.Open(r.checkpoint, note.VerifierList(t.verifiers...))
	if err != nil {
		return "", fmt.Errorf("checkpoint: %v", err)
	}
	signers := map[string]bool{}
	for _, sig := range n.Sigs {
		signers[sig.Name] = true
	}
	if len(signers) < t.quorum {
		return "", fmt.Errorf("checkpoint signed by %d trusted keys, quorum is %d", len(signers), t.quorum)
	}
	origin, size, root, err := parseCheckpoint(n.Text)
	if err != nil {
		return "", err
	}
	if t.origin != "" && origin != t.origin {
		return "", fmt.Errorf("checkpoint origin %q is not %q", origin, t.origin)
	}
	if !r.hasExtra {
		return "", errors.New("receipt has no extra line (the entry)")
	}
	if err := tlog.CheckRecord(r.proof, size, root, r.index, tlog.RecordHash(r.extra)); err != nil {
		return "", fmt.Errorf("inclusion: %v", err)
	}
	names := make([]string, 0, len(signers))
	for name := range signers {
		names = append(names, name)
	}
	sort.Strings(names)
	return fmt.Sprintf("OK index=%d size=%d signers=%s", r.index, size, strings.Join(names, ",")), nil
}

func verifyConsistency(args []string) (string, error) {
	size1, err := parseDecimal(args[0], "size1")
	if err != nil {
		return "", err
	}
	root1, err := decodeHash(args[1])
	if err != nil {
		return "", err
	}
	size2, err := parseDecimal(args[2], "size2")
	if err != nil {
		return "", err
	}
	root2, err := decodeHash(args[3])
	if err != nil {
		return "", err
	}
	var proof tlog.TreeProof
	for _, arg := range args[4:] {
		h, err := decodeHash(arg)
		if err != nil {
			return "", err
		}
		proof = append(proof, h)
	}
	// CheckTree takes the new tree first: (proof, newSize, newRoot, oldSize, oldRoot).
	if err := tlog.CheckTree(proof, size2, root2, size1, root1); err != nil {
		return "", fmt.Errorf("consistency: %v", err)
	}
	return fmt.Sprintf("OK size1=%d size2=%d", size1, size2), nil
}
