package daemoncmd

import (
	"github.com/berth-dev/berth/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// collector reads the engine's state at each scrape: nothing is counted
// twice or goes stale between scrapes.
type collector struct {
	e                              *engine.Engine
	containers, restarts, cpu, mem *prometheus.Desc
	images                         *prometheus.Desc
}

func newCollector(e *engine.Engine) *collector {
	return &collector{
		e:          e,
		containers: prometheus.NewDesc("berth_containers", "Containers by state.", []string{"state"}, nil),
		restarts:   prometheus.NewDesc("berth_container_restarts", "Restarts a container's policy has made.", []string{"id", "name"}, nil),
		cpu:        prometheus.NewDesc("berth_container_cpu_seconds_total", "CPU time a running container has used.", []string{"id", "name"}, nil),
		mem:        prometheus.NewDesc("berth_container_memory_bytes", "Memory a running container's cgroup is charged.", []string{"id", "name"}, nil),
		images:     prometheus.NewDesc("berth_images", "Image names in the store.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.containers, c.restarts, c.cpu, c.mem, c.images} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	states := map[string]int{engine.Created: 0, engine.Running: 0, engine.Restarting: 0, engine.Exited: 0}
	for _, ct := range c.e.List() {
		states[ct.State.Status]++
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.GaugeValue, float64(ct.State.RestartCount), ct.ID, ct.Name)
		if ct.State.Status != engine.Running {
			continue
		}
		if st, err := c.e.Stats(ct.ID); err == nil && st.Cgroup != nil {
			ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, float64(st.Cgroup.CPU.Usage.Total)/1e9, ct.ID, ct.Name)
			ch <- prometheus.MustNewConstMetric(c.mem, prometheus.GaugeValue, float64(st.Cgroup.Memory.Usage.Usage), ct.ID, ct.Name)
		}
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(c.containers, prometheus.GaugeValue, float64(n), s)
	}
	if imgs, err := c.e.Images.List(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.images, prometheus.GaugeValue, float64(len(imgs)))
	}
}
