// Command runbench times commands side by side: each round runs every
// command once, in an order that rotates between rounds so that none
// always goes first, and records wall time, CPU time (user+system of the
// command and the children it waited for) and peak RSS (the largest
// resident set of the command or any process it waited for, as the
// kernel's ru_maxrss reports it).
//
//	runbench -n 200 berth='berth runtime run b{i}' runc='runc run r{i}'
//
// {i} in a command is replaced by the round number. The first command is
// the one the others are compared with.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type sample struct {
	wall, cpu time.Duration
	rss       int64 // KiB
}

type cmdSpec struct {
	name, line string
	samples    []sample
}

func main() {
	n := flag.Int("n", 100, "rounds")
	warmup := flag.Int("warmup", 5, "rounds run first and not counted")
	markdown := flag.Bool("markdown", false, "print a Markdown table")
	flag.Parse()
	var cmds []*cmdSpec
	for _, a := range flag.Args() {
		name, line, ok := strings.Cut(a, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "runbench: %q is not name=command\n", a)
			os.Exit(2)
		}
		cmds = append(cmds, &cmdSpec{name: name, line: line})
	}
	if len(cmds) == 0 {
		fmt.Fprintln(os.Stderr, "runbench: no commands")
		os.Exit(2)
	}
	for round := 0; round < *warmup+*n; round++ {
		for k := range cmds {
			c := cmds[(round+k)%len(cmds)]
			s, err := runOnce(strings.ReplaceAll(c.line, "{i}", strconv.Itoa(round)))
			if err != nil {
				fmt.Fprintf(os.Stderr, "runbench: %s: %v\n", c.name, err)
				os.Exit(1)
			}
			if round >= *warmup {
				c.samples = append(c.samples, s)
			}
		}
	}
	report(cmds, *markdown)
}

func runOnce(line string) (sample, error) {
	cmd := exec.Command("/bin/sh", "-c", "exec "+line)
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("%s: %w", line, err)
	}
	wall := time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return sample{wall: wall, cpu: cpu, rss: ru.Maxrss}, nil
}

func median[T int64 | time.Duration](xs []T) T {
	s := append([]T(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func report(cmds []*cmdSpec, md bool) {
	type row struct {
		name               string
		wall, cpu          time.Duration
		rssMedian, rssPeak int64
		wallR, cpuR, rssR  float64
	}
	var rows []row
	for _, c := range cmds {
		var walls, cpus []time.Duration
		var rss []int64
		var peak int64
		for _, s := range c.samples {
			walls, cpus, rss = append(walls, s.wall), append(cpus, s.cpu), append(rss, s.rss)
			if s.rss > peak {
				peak = s.rss
			}
		}
		rows = append(rows, row{name: c.name, wall: median(walls), cpu: median(cpus), rssMedian: median(rss), rssPeak: peak})
	}
	base := rows[0]
	for i := range rows {
		rows[i].wallR = float64(rows[i].wall) / float64(base.wall)
		rows[i].cpuR = float64(rows[i].cpu) / float64(base.cpu)
		rows[i].rssR = float64(rows[i].rssPeak) / float64(base.rssPeak)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
	mib := func(k int64) string { return fmt.Sprintf("%.1f", float64(k)/1024) }
	if md {
		fmt.Printf("| command | median wall (ms) | median CPU (ms) | peak RSS (MiB) | median RSS (MiB) | wall / %s | CPU / %s | peak RSS / %s |\n", base.name, base.name, base.name)
		fmt.Println("|---|---|---|---|---|---|---|---|")
		for _, r := range rows {
			fmt.Printf("| %s | %s | %s | %s | %s | %.2f | %.2f | %.2f |\n", r.name, ms(r.wall), ms(r.cpu), mib(r.rssPeak), mib(r.rssMedian), r.wallR, r.cpuR, r.rssR)
		}
		return
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "COMMAND\tWALL ms\tCPU ms\tPEAK RSS MiB\tMEDIAN RSS MiB\tWALL/%s\tCPU/%s\tRSS/%s\n", base.name, base.name, base.name)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\n", r.name, ms(r.wall), ms(r.cpu), mib(r.rssPeak), mib(r.rssMedian), r.wallR, r.cpuR, r.rssR)
	}
	tw.Flush()
}
