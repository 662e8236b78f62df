// Command echoserver is the HTTP server of Berth's test images: network,
// port, probe and stop-signal tests run it in a container and talk to it.
//
// It listens on -listen, which defaults to ":$PORT" (PORT defaults to
// 8080), and answers:
//
//	GET  /            "echoserver <hostname>\n"
//	GET  /env         its environment, sorted, one variable a line
//	GET  /healthz     200 "ok", or 500 "unhealthy" after POST /unhealthy
//	POST /unhealthy   makes /healthz fail; POST /healthy undoes it
//	GET  /headers     Host, then the request's headers by name, "Name: value" a line
//	POST /exit?code=N answers, then exits with status N
//	GET  /sleep?d=1s  sleeps for d, then answers
//
// SIGTERM and SIGINT shut it down gracefully (requests in flight finish)
// and it exits 0. It logs one line per request to stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type server struct {
	hostname string
	environ  func() []string
	log      io.Writer
	logMu    sync.Mutex
	sick     atomic.Bool
	// exit receives the status a POST /exit asked for; main shuts down
	// and exits with it once the response has gone out.
	exit chan int
}

func newServer(log io.Writer) *server {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return &server{hostname: host, environ: os.Environ, log: log, exit: make(chan int, 1)}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "echoserver %s\n", s.hostname)
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		env := slices.Clone(s.environ())
		slices.Sort(env)
		for _, kv := range env {
			fmt.Fprintln(w, kv)
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.sick.Load() {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("POST /unhealthy", func(w http.ResponseWriter, r *http.Request) {
		s.sick.Store(true)
		io.WriteString(w, "unhealthy\n")
	})
	mux.HandleFunc("POST /healthy", func(w http.ResponseWriter, r *http.Request) {
		s.sick.Store(false)
		io.WriteString(w, "healthy\n")
	})
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		// Go keeps Host out of Header; probes and proxies care about it.
		fmt.Fprintf(w, "Host: %s\n", r.Host)
		names := slices.Sorted(maps.Keys(r.Header))
		for _, name := range names {
			// A header's repeated values keep their order: it can matter.
			for _, v := range r.Header[name] {
				fmt.Fprintf(w, "%s: %s\n", name, v)
			}
		}
	})
	mux.HandleFunc("POST /exit", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil || code < 0 || code > 255 {
			http.Error(w, "code must be 0 to 255", http.StatusBadRequest)
			return
		}
		select {
		case s.exit <- code:
			fmt.Fprintf(w, "exiting %d\n", code)
		default:
			http.Error(w, "already exiting", http.StatusConflict)
		}
	})
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 {
			http.Error(w, "d must be a duration such as 1s", http.StatusBadRequest)
			return
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			fmt.Fprintf(w, "slept %s\n", d)
		case <-r.Context().Done():
		}
	})
	return s.logged(mux)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (s *server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.logMu.Lock()
		defer s.logMu.Unlock()
		fmt.Fprintf(s.log, "%s %s %s %d %s\n", r.RemoteAddr, r.Method, r.URL.RequestURI(), sw.status,
			time.Since(start).Round(time.Microsecond))
	})
}

func defaultListen() string {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	return ":" + port
}

// run serves until a signal or POST /exit, and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("echoserver", flag.ContinueOnError)
	fset.SetOutput(stderr)
	listen := fset.String("listen", defaultListen(), "address to listen on")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "echoserver:", err)
		return 1
	}
	s := newServer(stdout)
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// Tests read this line to learn the port when listening on :0.
	fmt.Fprintf(stdout, "echoserver listening on %s\n", ln.Addr())

	status := 0
	select {
	case err := <-served:
		fmt.Fprintln(stderr, "echoserver:", err)
		return 1
	case sig := <-sigs:
		fmt.Fprintf(stdout, "echoserver: %v, shutting down\n", sig)
	case status = <-s.exit:
		fmt.Fprintf(stdout, "echoserver: exiting %d as asked\n", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "echoserver: shutdown:", err)
		if status == 0 {
			status = 1
		}
	}
	return status
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
