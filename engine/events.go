package engine

import (
	"sync"
	"time"
)

// Event is something that happened to a container, image or network.
type Event struct {
	Time       time.Time         `json:"time"`
	Type       string            `json:"type"`   // container, image, network, volume
	Action     string            `json:"action"` // create, start, die, destroy, ...
	ID         string            `json:"id"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Events fans events out to subscribers and keeps the recent ones for
// those who ask from a time in the past.
type Events struct {
	mu     sync.Mutex
	recent []Event
	subs   map[chan Event]bool
}

const keptEvents = 1024

func newEvents() *Events { return &Events{subs: map[chan Event]bool{}} }

// Publish sends an event to the subscribers (the API's image events go
// through the engine's bus too, so that one stream has them all).
func (b *Events) Publish(ev Event) { b.publish(ev) }

func (b *Events) publish(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.recent) == keptEvents {
		b.recent = b.recent[1:]
	}
	b.recent = append(b.recent, ev)
	for ch := range b.subs {
		select {
		case ch <- ev:
		default: // a subscriber too slow loses events rather than stall the engine
		}
	}
}

// Subscribe returns the kept events since t (none if t is zero) and a
// channel of those to come; cancel ends it.
func (b *Events) Subscribe(since time.Time) (past []Event, ch <-chan Event, cancel func()) {
	c := make(chan Event, 256)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !since.IsZero() {
		for _, ev := range b.recent {
			if !ev.Time.Before(since) {
				past = append(past, ev)
			}
		}
	}
	b.subs[c] = true
	return past, c, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.subs[c] {
			delete(b.subs, c)
			close(c)
		}
	}
}
