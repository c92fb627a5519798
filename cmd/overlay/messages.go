package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/overlay-net/overlay/node/api"
	"github.com/overlay-net/overlay/node/messaging"
	"github.com/overlay-net/overlay/protocol"
)

func runSend(args []string) error {
	var cf clientFlags
	var stdin bool
	var soak, interval time.Duration
	fs := newFlags("send", "send [flags] PEER TEXT\n       overlay send --stdin PEER      (each input line is a message)\n       overlay send --soak 30m [--interval 500ms] PEER\n\nPEER is a peer ID, or a member's name in certificate mode. Exits 0 once\nevery message is acknowledged, printing the round-trip time.")
	cf.register(fs, true, 30*time.Second)
	fs.BoolVar(&stdin, "stdin", false, "send each line of standard input as a message (at most 1 MiB a line); a line too long or not acknowledged is reported by number, the lines after it are still sent, and the command then exits 1")
	fs.DurationVar(&soak, "soak", 0, "send a numbered message every --interval for this long, then report sent, acknowledged, lost, goroutines and heap")
	fs.DurationVar(&interval, "interval", 500*time.Millisecond, "with --soak: time between messages")
	if err := parse(fs, args); err != nil {
		return err
	}
	want := 2
	if stdin || soak > 0 {
		want = 1
	}
	if fs.NArg() != want {
		fs.Usage()
		return errUsage
	}
	to := fs.Arg(0)
	switch {
	case soak > 0:
		return runSoak(cf, to, soak, interval)
	case stdin:
		return sendLines(cf, to, os.Stdin, os.Stderr)
	}
	return sendOne(cf, to, []byte(fs.Arg(1)))
}

func sendOne(cf clientFlags, to string, data []byte) error {
	c, ctx, cancel, err := cf.client()
	if err != nil {
		return err
	}
	defer cancel()
	rtt, err := c.Send(ctx, to, data, cf.timeout)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(api.SendResult{RTT: rtt})
	}
	fmt.Printf("acknowledged by %s in %s\n", to, rtt.Round(time.Microsecond))
	return nil
}

// sendLines sends each line of standard input (without its line end) as a
// message, in order. A line that fails, by being longer than the message
// maximum or by not being acknowledged, is reported with its number and the
// lines after it are still sent: each line is a message of its own. The
// command then fails, counting the lines that did.
func sendLines(cf clientFlags, to string, in io.Reader, stderr io.Writer) error {
	r := bufio.NewReaderSize(in, 64<<10)
	failed := 0
	for n := 1; ; n++ {
		line, err := readLine(r, protocol.MaxMessageSize)
		if errors.Is(err, io.EOF) && line == nil {
			break
		}
		switch {
		case errors.Is(err, errLongLine):
			fmt.Fprintf(stderr, "overlay send: line %d: %v\n", n, err)
			failed++
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return fmt.Errorf("read stdin at line %d: %w", n, err)
		}
		if serr := sendOne(cf, to, line); serr != nil {
			fmt.Fprintf(stderr, "overlay send: line %d: %v\n", n, serr)
			failed++
		}
		if err != nil { // io.EOF after a last line without a newline
			break
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d lines not sent or not acknowledged", failed)
	}
	return nil
}

var errLongLine = fmt.Errorf("longer than the message maximum of %d bytes; not sent", protocol.MaxMessageSize)

// readLine returns the next line without its "\n" (or "\r\n"). A line over
// max bytes is read to its end and dropped, with errLongLine, so that the
// next call starts at the next line. At the end of input it returns the
// last, unterminated line with io.EOF, or nil and io.EOF.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	long := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !long {
			line = append(line, chunk...)
			// Room for the line end: a line of exactly max bytes is fine.
			if len(bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))) > max {
				long, line = true, nil
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil:
			if long {
				return nil, errLongLine
			}
			line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			return line, nil
		case errors.Is(err, io.EOF):
			if long {
				return nil, errLongLine
			}
			if len(line) == 0 {
				return nil, io.EOF
			}
			return bytes.TrimSuffix(line, []byte("\r")), io.EOF
		default:
			return nil, err
		}
	}
}

func runInbox(args []string) error {
	var cf clientFlags
	var limit int
	fs := newFlags("inbox", "inbox [--json] [--limit N] [--api ADDR]")
	cf.register(fs, true, 30*time.Second)
	fs.IntVar(&limit, "limit", 0, "show only the N newest messages (0: all kept; the node keeps the last 1000)")
	if err := parse(fs, args); err != nil {
		return err
	}
	return fetch(&cf, func(ctx context.Context, c *api.Client) ([]messaging.Message, error) {
		return c.Inbox(ctx, limit)
	}, func(msgs []messaging.Message) error {
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RECEIVED\tFROM\tSEQ\tDATA")
		for _, m := range msgs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", m.ReceivedAt.Local().Format(time.TimeOnly), m.From, m.Seq,
				strconv.Quote(truncateText(string(m.Data), 80)))
		}
		return tw.Flush()
	})
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func runPing(args []string) error {
	var cf clientFlags
	var count int
	var interval time.Duration
	fs := newFlags("ping", "ping [flags] TARGET\n\nTARGET is a peer ID, a member's name (certificate mode) or a multiaddr\nending in /p2p/<peer ID>; any libp2p peer\nthat serves /ipfs/ping/1.0.0 answers, direct or relayed. --timeout 0 means\ncount x interval + 30s.")
	cf.register(fs, true, 0)
	fs.IntVar(&count, "count", 4, "pings to send")
	fs.DurationVar(&interval, "interval", time.Second, "time between pings")
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	if cf.timeout <= 0 {
		cf.timeout = api.PingBudget(count, interval)
	}
	return fetch(&cf, func(ctx context.Context, c *api.Client) (api.PingResult, error) {
		return c.Ping(ctx, api.PingRequest{Target: fs.Arg(0), Count: count, Interval: interval.String(), Timeout: cf.timeout.String()})
	}, func(res api.PingResult) error {
		for i, rtt := range res.RTTs {
			fmt.Printf("pong from %s: seq=%d time=%s\n", fs.Arg(0), i+1, rtt.Round(time.Microsecond))
		}
		st := summarize(res.RTTs)
		fmt.Printf("%d sent, %d answered; rtt min/avg/max = %s/%s/%s\n", count, len(res.RTTs),
			st.min.Round(time.Microsecond), st.avg.Round(time.Microsecond), st.max.Round(time.Microsecond))
		if res.Error != "" {
			return fmt.Errorf("stopped early: %s", res.Error)
		}
		return nil
	})
}

func runPerf(args []string) error {
	var cf clientFlags
	var up, down uint64
	fs := newFlags("perf", "perf [flags] TARGET\n\nMeasures throughput with the libp2p perf protocol (/perf/1.0.0) to any peer\nthat serves it, over whatever path joins the two. TARGET is a peer ID, a\nmember's name (certificate mode) or a multiaddr ending in /p2p/<peer ID>.\nTo an overlay node it runs over a resumable session (/overlay/perf/1.0.0)\nthat follows the path as it changes: from the relay to a direct connection,\nand back if that dies.")
	cf.register(fs, true, 5*time.Minute)
	fs.Uint64Var(&up, "upload", 16<<20, "bytes to send")
	fs.Uint64Var(&down, "download", 16<<20, "bytes to receive")
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	return fetch(&cf, func(ctx context.Context, c *api.Client) (protocol.PerfResult, error) {
		return c.Perf(ctx, api.PerfRequest{Target: fs.Arg(0), Upload: up, Download: down, Timeout: cf.timeout.String()})
	}, func(res protocol.PerfResult) error {
		fmt.Printf("upload:   %d bytes in %s = %s\n", res.Upload, res.UploadTime.Round(time.Millisecond), rate(res.Upload, res.UploadTime))
		fmt.Printf("download: %d bytes in %s = %s\n", res.Download, res.DownloadTime.Round(time.Millisecond), rate(res.Download, res.DownloadTime))
		fmt.Printf("total:    %s\n", res.Total.Round(time.Millisecond))
		return nil
	})
}

func rate(n uint64, d time.Duration) string {
	if d <= 0 || n == 0 {
		return "-"
	}
	bps := float64(n) * 8 / d.Seconds()
	units := []string{"bit/s", "kbit/s", "Mbit/s", "Gbit/s"}
	i := 0
	for bps >= 1000 && i < len(units)-1 {
		bps /= 1000
		i++
	}
	return strings.TrimSpace(fmt.Sprintf("%.1f %s", bps, units[i]))
}
