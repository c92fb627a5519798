package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/overlay-net/overlay/node/api"
	"github.com/overlay-net/overlay/node/topics"
)

func runPub(args []string) error {
	var cf clientFlags
	var stdin bool
	fs := newFlags("pub", "pub [flags] TOPIC TEXT\n       overlay pub --stdin TOPIC      (each input line is a message)\n\nPublishes to every member following TOPIC, and prints the message's sequence\nnumber and how many of the node's peers follow the topic (0: nobody got it).")
	cf.register(fs, true, 30*time.Second)
	fs.BoolVar(&stdin, "stdin", false, "publish each line of standard input as a message (at most 1 MiB a line), in order; a line that fails is reported by number, the lines after it are still published, and the command then exits 1")
	if err := parse(fs, args); err != nil {
		return err
	}
	want := 2
	if stdin {
		want = 1
	}
	if fs.NArg() != want {
		fs.Usage()
		return errUsage
	}
	if stdin {
		return pubLines(cf, fs.Arg(0), os.Stdin, os.Stderr)
	}
	return pubOne(cf, fs.Arg(0), []byte(fs.Arg(1)))
}

func pubOne(cf clientFlags, topic string, data []byte) error {
	c, ctx, cancel, err := cf.client()
	if err != nil {
		return err
	}
	defer cancel()
	res, err := c.PublishTopic(ctx, topic, data, cf.timeout)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(res)
	}
	fmt.Printf("published seq %d to %q (%d peers follow it)\n", res.Seq, topic, res.Peers)
	return nil
}

// pubLines publishes each line of in as a message, as sendLines does.
func pubLines(cf clientFlags, topic string, in io.Reader, stderr io.Writer) error {
	r := bufio.NewReaderSize(in, 64<<10)
	failed := 0
	for n := 1; ; n++ {
		line, err := readLine(r, topics.MaxData)
		if errors.Is(err, io.EOF) && line == nil {
			break
		}
		switch {
		case errors.Is(err, errLongLine):
			fmt.Fprintf(stderr, "overlay pub: line %d: %v\n", n, err)
			failed++
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return fmt.Errorf("read stdin at line %d: %w", n, err)
		}
		if perr := pubOne(cf, topic, line); perr != nil {
			fmt.Fprintf(stderr, "overlay pub: line %d: %v\n", n, perr)
			failed++
		}
		if err != nil {
			break
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d lines not published", failed)
	}
	return nil
}

func runSub(args []string) error {
	var cf clientFlags
	fs := newFlags("sub", "sub [flags] TOPIC\n\nFollows TOPIC and prints each message as it arrives, in order per publisher:\ntime, publisher, its sequence number, the text (quoted) or base64 data.\nMessages that never arrived, or that this follower was too slow for, are\nreported on standard error with their count. Runs until interrupted, or\nfor --timeout when given.")
	cf.register(fs, true, 0)
	if err := parseArgs(fs, args, 1); err != nil {
		return err
	}
	c, _, cancel, err := cf.client()
	if err != nil {
		return err
	}
	cancel()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cf.timeout > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, cf.timeout)
		defer c2()
	}
	err = c.Subscribe(ctx, fs.Arg(0), func(m api.TopicMessage) error { return printTopicMessage(os.Stdout, os.Stderr, m, cf.json) },
		func(st topics.SubStats) { printSubStats(os.Stderr, st, cf.json) })
	if ctx.Err() != nil {
		return nil // interrupted, or --timeout: the way it ends
	}
	return err
}

func printTopicMessage(out, errOut io.Writer, m api.TopicMessage, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(m)
	}
	if m.Missed > 0 {
		fmt.Fprintf(errOut, "overlay sub: %d messages from %s missing before seq %d\n", m.Missed, m.From, m.Seq)
	}
	body := "base64:" + m.DataBase64
	if m.Text != nil {
		body = strconv.Quote(*m.Text)
	}
	_, err := fmt.Fprintf(out, "%s %s %d %s\n", m.Received.Local().Format(time.TimeOnly), m.From, m.Seq, body)
	return err
}

func printSubStats(errOut io.Writer, st topics.SubStats, asJSON bool) {
	if asJSON {
		_ = json.NewEncoder(errOut).Encode(map[string]topics.SubStats{"stats": st})
		return
	}
	fmt.Fprintf(errOut, "overlay sub: %d delivered, %d dropped (too slow), %d missing so far\n", st.Delivered, st.Dropped, st.Missed)
}

func runTopics(args []string) error {
	var cf clientFlags
	var stats bool
	fs := newFlags("topics", "topics [--json]\n       overlay topics --stats\n\nThe topics the node has joined: members that follow each among its peers,\nits mesh, local followers, messages published, delivered, missing and dropped.")
	cf.register(fs, true, 30*time.Second)
	fs.BoolVar(&stats, "stats", false, "print, as JSON, the node's gossipsub as a whole instead: RPCs and bytes it sent (wire), messages refused by reason, each peer's score, backfill requests asked, served and refused, and the node's live heap after a garbage collection (heap_alloc, bytes)")
	if err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	c, ctx, cancel, err := cf.client()
	if err != nil {
		return err
	}
	defer cancel()
	if stats {
		st, err := c.TopicStats(ctx)
		if err != nil {
			return err
		}
		rt, err := c.RuntimeAfterGC(ctx)
		if err != nil {
			return err
		}
		return printJSON(struct {
			api.TopicStats
			HeapAlloc uint64 `json:"heap_alloc"`
		}{st, rt.HeapAlloc})
	}
	ts, err := c.Topics(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(ts)
	}
	if len(ts) == 0 {
		fmt.Println("no topics joined")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPEERS\tMESH\tFOLLOWERS\tPUBLISHED\tDELIVERED\tMISSED\tDROPPED")
	for _, t := range ts {
		name := t.Name
		if t.Relayed {
			name += " (relayed)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", strings.ReplaceAll(name, "\t", " "), len(t.Peers), len(t.Mesh),
			t.Followers, t.Published, t.Delivered, t.Missed, t.Dropped)
	}
	return tw.Flush()
}

// registerTopicLimits binds the daemon flags of group messaging to l
// (node/topics Limits); Limits.Validate checks them when the node starts.
func registerTopicLimits(fs *flag.FlagSet, l *topics.Limits) {
	fs.IntVar(&l.MaxSize, "topic-max-size", l.MaxSize, fmt.Sprintf("largest topic message in bytes, published or accepted from a peer (a peer's larger one is refused and lowers its score); at most %d; give every member the same", topics.MaxData))
	fs.Float64Var(&l.Rate, "topic-rate", l.Rate, "messages a second one author may publish to one topic: a local publisher waits for its turn; an author's messages from peers beyond it, once a bucket of twice --topic-burst is spent, are refused and lower the sender's score")
	fs.IntVar(&l.Burst, "topic-burst", l.Burst, "messages one author may publish to one topic at once, above --topic-rate")
	fs.IntVar(&l.History, "topic-history", l.History, fmt.Sprintf("gossipsub heartbeats (one a second) a message stays in the gossip this node sends to peers outside its mesh, who may then fetch it: covers messages lost on one path; a member cut off from every path gets no gossip of what it missed once back (it is meshed again at once) and reports it missing; memory grows with it (1 to %d)", topics.MaxHistory))
	fs.DurationVar(&l.Backfill, "topic-backfill", l.Backfill, fmt.Sprintf("how long this node keeps the topic messages it delivers or relays (at most 32768 messages and 32 MiB for all topics), to send to members that missed them; a follower that finds a gap in an author's messages asks its peers for it (/overlay/topics/backfill/1.0.0) and reports missing only what none of them still holds; 0 turns both off (up to %s)", topics.MaxBackfill))
	fs.IntVar(&l.Buffer, "topic-buffer", l.Buffer, "messages queued for each local follower ('overlay sub', the API): one that falls further behind loses messages, counted as dropped")
}
