// Command plot draws the benchmark figures: the relay's RSS against the
// reservations it holds, from bench/capacity JSON files, and throughput per
// path from a datapath benchmark's JSON ({path, median_mb_per_s} entries).
// It is a module of its own (its plotting dependencies stay out of the
// daemon's); from the repository's top:
//
//	make plot-bin
//	bin/plot -datapath datapath.json cap-1000.json cap-5000.json cap-10000.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

type capacity struct {
	N           int `json:"n"`
	ReservedEnd int `json:"reserved_end"`
	Relay       struct {
		Idle int64 `json:"rss_idle_kib"`
		Peak int64 `json:"rss_peak_kib"`
		End  int64 `json:"rss_end_kib"`
	} `json:"relay"`
	Series []struct {
		Reserved int   `json:"reserved"`
		RSS      int64 `json:"rss_kib"`
	} `json:"series"`
}

type bar struct {
	Path string  `json:"path"`
	Mbps float64 `json:"median_mb_per_s"`
}

func main() {
	datapath := flag.String("datapath", "", "datapath benchmark JSON (entries {path, median_mb_per_s}); skipped if absent")
	rssOut := flag.String("rss-out", "docs/relay-rss.png", "relay RSS figure")
	tputOut := flag.String("throughput-out", "docs/throughput.png", "throughput figure")
	flag.Parse()
	if err := run(flag.Args(), *datapath, *rssOut, *tputOut); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

func run(files []string, datapath, rssOut, tputOut string) error {
	if len(files) > 0 {
		if err := rssPlot(files, rssOut); err != nil {
			return err
		}
		fmt.Println("wrote", rssOut)
	}
	if datapath == "" {
		return nil
	}
	b, err := os.ReadFile(datapath)
	if os.IsNotExist(err) {
		fmt.Fprintln(os.Stderr, "plot: no", datapath, "- throughput skipped")
		return nil
	} else if err != nil {
		return err
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", datapath, err)
	}
	var bars []bar
	collect(doc, &bars)
	if len(bars) == 0 {
		return fmt.Errorf("%s: no {path, median_mb_per_s} entries", datapath)
	}
	if err := barPlot(bars, tputOut); err != nil {
		return err
	}
	fmt.Println("wrote", tputOut)
	return nil
}

// collect finds every object with a path and an median_mb_per_s, wherever the
// file nests them (a bare list, or a list under some key).
func collect(v any, out *[]bar) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			collect(e, out)
		}
	case map[string]any:
		p, ok1 := v["path"].(string)
		m, ok2 := v["median_mb_per_s"].(float64)
		if ok1 && ok2 {
			*out = append(*out, bar{p, m})
			return
		}
		for _, e := range v {
			collect(e, out)
		}
	}
}

func rssPlot(files []string, out string) error {
	p := plot.New()
	p.Title.Text = "Overlay relay: resident memory against reservations held"
	p.X.Label.Text = "reservations held"
	p.Y.Label.Text = "relay RSS (MiB)"
	var ends, peaks, ramp plotter.XYs
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var c capacity
		if err := json.Unmarshal(b, &c); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		ends = append(ends, plotter.XY{X: float64(c.ReservedEnd), Y: mib(c.Relay.End)})
		peaks = append(peaks, plotter.XY{X: float64(c.ReservedEnd), Y: mib(c.Relay.Peak)})
		ramp = append(ramp, plotter.XY{X: 0, Y: mib(c.Relay.Idle)})
		for _, s := range c.Series {
			ramp = append(ramp, plotter.XY{X: float64(s.Reserved), Y: mib(s.RSS)})
		}
	}
	byX := func(xy plotter.XYs) { sort.Slice(xy, func(i, j int) bool { return xy[i].X < xy[j].X }) }
	byX(ends)
	byX(peaks)
	sc, err := plotter.NewScatter(ramp)
	if err != nil {
		return err
	}
	sc.GlyphStyle.Radius, sc.GlyphStyle.Color = vg.Points(1.5), color.Gray{Y: 160}
	p.Add(sc, plotter.NewGrid())
	p.Legend.Add("samples during runs (1/s)", sc)
	p.Legend.Top, p.Legend.Left = true, true
	for _, l := range []struct {
		name string
		xy   plotter.XYs
		c    color.Color
	}{{"end of hold", ends, color.RGBA{B: 200, A: 255}}, {"peak (VmHWM)", peaks, color.RGBA{R: 200, A: 255}}} {
		line, pts, err := plotter.NewLinePoints(l.xy)
		if err != nil {
			return err
		}
		line.Color, pts.Color = l.c, l.c
		p.Add(line, pts)
		p.Legend.Add(l.name, line, pts)
	}
	p.X.Min, p.Y.Min = 0, 0
	return p.Save(7*vg.Inch, 4.5*vg.Inch, out)
}

func barPlot(bars []bar, out string) error {
	p := plot.New()
	p.Title.Text = "Throughput per path (median)"
	p.Y.Label.Text = "MB/s (10^6 bytes/s)"
	vals, names := make(plotter.Values, len(bars)), make([]string, len(bars))
	for i, b := range bars {
		vals[i], names[i] = b.Mbps, b.Path
	}
	bc, err := plotter.NewBarChart(vals, vg.Points(40))
	if err != nil {
		return err
	}
	bc.Color = color.RGBA{G: 120, B: 200, A: 255}
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: barTops(vals), Labels: fmtVals(vals)})
	if err != nil {
		return err
	}
	p.Add(bc, labels, plotter.NewGrid())
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(bars))-0.4
	return p.Save(vg.Length(max(5, len(bars)))*vg.Inch, 4*vg.Inch, out)
}

func barTops(v plotter.Values) plotter.XYs {
	xy := make(plotter.XYs, len(v))
	for i, y := range v {
		xy[i] = plotter.XY{X: float64(i) - 0.2, Y: y}
	}
	return xy
}

func fmtVals(v plotter.Values) []string {
	s := make([]string, len(v))
	for i, y := range v {
		s[i] = fmt.Sprintf("%.0f", y)
	}
	return s
}

func mib(kib int64) float64 { return float64(kib) / 1024 }
