// Package imagefleet is a client for the imagefleet HTTP API: submit image jobs, wait for
// them, move objects in and out of your namespace, and check signed webhooks.
//
//	c := imagefleet.NewClient("http://127.0.0.1:8080", apiKey)
//	job, err := c.Crop(ctx, &imagefleet.CropJob{
//		Input: "photo.jpg", Output: "cropped.jpg",
//		Rect:  &imagefleet.CropRect{X: 100, Y: 50, Width: 800, Height: 600},
//	})
//
// Error replies and jobs that end failed come back as *APIError (use errors.As).
// Replies 429 and 503 are retried after their Retry-After. The package uses the
// standard library only.
package imagefleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// MaxServerWait is the longest the gateway holds a `POST /v1/jobs?wait=` reply.
	MaxServerWait = 60 * time.Second
	// DefaultWaitTimeout bounds how long Crop, Run and Wait follow a job.
	DefaultWaitTimeout = 120 * time.Second
	// DefaultRetries is how many times a 429 or 503 reply is retried.
	DefaultRetries = 5
	// DefaultRequestTimeout bounds one HTTP exchange (plus any time the server may hold it).
	DefaultRequestTimeout = 60 * time.Second

	userAgent = "imagefleet-go/0.1"
)

// Client talks to one fleet with one API key. It is safe for concurrent use.
type Client struct {
	baseURL        string
	apiKey         string
	http           *http.Client
	waitTimeout    time.Duration
	retries        int
	requestTimeout time.Duration
	pollInterval   time.Duration
	// sleep waits between retries and polls; tests replace it to see the delays asked for.
	sleep func(ctx context.Context, d time.Duration) error
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends the requests through h (proxies, TLS, transports). A Timeout set on
// h also caps how long the server is asked to hold a `?wait` reply.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) {
		if h != nil {
			c.http = h
		}
	}
}

// WithWaitTimeout bounds how long Crop, Run and Wait follow a job (default 2 minutes);
// 0 leaves only the context's deadline.
func WithWaitTimeout(d time.Duration) Option {
	return func(c *Client) { c.waitTimeout = d }
}

// WithRetries sets how many times a 429 or 503 reply is retried (default 5; 0: never).
func WithRetries(n int) Option {
	return func(c *Client) {
		if n >= 0 {
			c.retries = n
		}
	}
}

// WithRequestTimeout bounds each HTTP exchange when the context has no earlier deadline
// (default 60 s); a `?wait` adds the time the server may hold the reply.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *Client) { c.requestTimeout = d }
}

// WithPollInterval sets the first pause between two looks at a job in Wait (default
// 100 ms); each pause is half as long again as the one before, up to 2 s.
func WithPollInterval(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.pollInterval = d
		}
	}
}

// NewClient returns a client for the fleet at baseURL (e.g. "http://127.0.0.1:8080").
func NewClient(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{
		baseURL:        strings.TrimRight(baseURL, "/"),
		apiKey:         apiKey,
		http:           &http.Client{},
		waitTimeout:    DefaultWaitTimeout,
		retries:        DefaultRetries,
		requestTimeout: DefaultRequestTimeout,
		pollInterval:   100 * time.Millisecond,
		sleep:          sleepCtx,
	}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// request is one API call: what to send, and how long the server may hold the reply.
type request struct {
	method string
	path   string // already escaped
	query  url.Values
	body   []byte
	header http.Header
	hold   time.Duration
}

// send makes the request, retrying 429 and 503 replies after their Retry-After. It
// returns the reply of a success with its body unread, and the function that releases it
// (call it once the body is read); an error reply is returned as *APIError.
func (c *Client) send(ctx context.Context, req request) (*http.Response, func(), error) {
	for attempt := 0; ; attempt++ {
		resp, release, err := c.attempt(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode < 400 {
			return resp, release, nil
		}
		apiErr := readAPIError(resp)
		release()
		retryable := resp.StatusCode == http.StatusTooManyRequests ||
			resp.StatusCode == http.StatusServiceUnavailable
		if !retryable || attempt >= c.retries {
			return nil, nil, apiErr
		}
		if err := c.sleep(ctx, retryDelay(apiErr.RetryAfter, attempt)); err != nil {
			return nil, nil, fmt.Errorf("imagefleet: %s %s: gave up retrying after %v: %w",
				req.method, req.path, apiErr, err)
		}
	}
}

func (c *Client) attempt(ctx context.Context, req request) (*http.Response, func(), error) {
	actx, cancel := ctx, context.CancelFunc(func() {})
	if c.requestTimeout > 0 {
		actx, cancel = context.WithTimeout(ctx, c.requestTimeout+req.hold)
	}
	target := c.baseURL + req.path
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hreq, err := http.NewRequestWithContext(actx, req.method, target, body)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("imagefleet: %w", err)
	}
	for name, values := range req.header {
		hreq.Header[name] = values
	}
	hreq.Header.Set("Authorization", "Bearer "+c.apiKey)
	hreq.Header.Set("User-Agent", userAgent)
	resp, err := c.http.Do(hreq)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("imagefleet: %s %s: %w", req.method, req.path, err)
	}
	return resp, func() { resp.Body.Close(); cancel() }, nil
}

// call makes the request and decodes its JSON reply into out.
func (c *Client) call(ctx context.Context, req request, out interface{}) error {
	resp, release, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	defer release()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("imagefleet: %s %s: reading the reply: %w", req.method, req.path, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("imagefleet: %s %s: the reply is not the JSON expected: %w",
			req.method, req.path, err)
	}
	return nil
}

// serverWait is how long to ask the server to hold a reply: at most MaxServerWait, and
// short enough for the reply to arrive before ctx's deadline or the HTTP client's timeout.
func (c *Client) serverWait(ctx context.Context, want time.Duration) time.Duration {
	if want > MaxServerWait {
		want = MaxServerWait
	}
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline) - time.Second; left < want {
			want = left
		}
	}
	if t := c.http.Timeout; t > 0 && want > t/2 {
		want = t / 2
	}
	if want < time.Second {
		return 0
	}
	return want.Truncate(time.Second)
}

// retryDelay follows the server's Retry-After, else backs off by half a second a try.
func retryDelay(retryAfter time.Duration, attempt int) time.Duration {
	if retryAfter > 0 {
		return retryAfter
	}
	return time.Duration(attempt+1) * 500 * time.Millisecond
}

// parseRetryAfter reads Retry-After as seconds or as an HTTP date (0 when absent or bad).
func parseRetryAfter(value string) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if seconds, err := strconv.ParseFloat(value, 64); err == nil && seconds >= 0 {
		return time.Duration(seconds * float64(time.Second))
	}
	if when, err := http.ParseTime(value); err == nil {
		if d := time.Until(when); d > 0 {
			return d
		}
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
