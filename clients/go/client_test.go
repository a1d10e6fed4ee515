package imagefleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"
)

// The client's behaviour against scripted servers: no fleet needed.

// script answers each request with the next of its replies and records what came.
type script struct {
	mu       sync.Mutex
	replies  []func(w http.ResponseWriter, r *http.Request)
	requests []*http.Request
	bodies   []string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	s.requests, s.bodies = append(s.requests, r), append(s.bodies, string(body))
	reply := s.replies[len(s.replies)-1] // the last one repeats
	if n := len(s.requests); n <= len(s.replies) {
		reply = s.replies[n-1]
	}
	reply(w, r)
}

func reply(status int, retryAfter, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

func jobJSON(id, status, result string) string {
	return fmt.Sprintf(`{"id": %q, "operation": "crop", "status": %q, "result": %s, "error": null,
		"billing": {"megapixels": 1.0, "quoted_micros": 300, "charged_micros": 0, "state": "held"},
		"created_at": "2026-11-30T19:01:17.886400Z", "started_at": null, "finished_at": null}`, id, status, result)
}

// scripted is a client of the script's server whose sleeps are recorded, not slept.
func scripted(t *testing.T, s *script, opts ...Option) (*Client, *[]time.Duration) {
	server := httptest.NewServer(s)
	t.Cleanup(server.Close)
	c := NewClient(server.URL+"/", "key-1", opts...)
	var slept []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		return ctx.Err()
	}
	return c, &slept
}

const rateLimited = `{"error": {"code": "RATE_LIMITED", "message": "too many requests; retry in 2 s"}}`

func TestRetriesFollowRetryAfterWithOneIdempotencyKey(t *testing.T) {
	s := &script{replies: []func(http.ResponseWriter, *http.Request){
		reply(429, "2", rateLimited),
		reply(503, "5", `{"error": {"code": "UNAVAILABLE", "message": "queue full"}}`),
		reply(202, "", jobJSON("job_1", "queued", "null")),
	}}
	c, slept := scripted(t, s)
	job, err := c.Submit(context.Background(), &CropJob{Input: "a.png", Rect: &CropRect{Width: 1, Height: 1}})
	if err != nil || job.ID != "job_1" || job.Status != StatusQueued {
		t.Fatalf("%+v %v", job, err)
	}
	if !reflect.DeepEqual(*slept, []time.Duration{2 * time.Second, 5 * time.Second}) {
		t.Fatalf("slept %v, not the Retry-Afters", *slept)
	}
	if len(s.requests) != 3 {
		t.Fatalf("%d requests", len(s.requests))
	}
	key := s.requests[0].Header.Get("Idempotency-Key")
	for i, r := range s.requests {
		if r.Header.Get("Idempotency-Key") != key || key == "" || s.bodies[i] != s.bodies[0] {
			t.Fatalf("retry %d is not the same submission", i)
		}
		if r.Header.Get("Authorization") != "Bearer key-1" || r.URL.Path != "/v1/jobs" || r.Method != "POST" {
			t.Fatalf("request %d: %s %s %v", i, r.Method, r.URL, r.Header)
		}
	}
	// A key of the caller's own is sent as it is.
	if _, err := c.Submit(context.Background(), map[string]string{"operation": "metadata"},
		WithIdempotencyKey("order-1841")); err != nil {
		t.Fatal(err)
	}
	if got := s.requests[3].Header.Get("Idempotency-Key"); got != "order-1841" {
		t.Fatalf("Idempotency-Key %q", got)
	}
}

func TestRetriesGiveUpWithTheLastError(t *testing.T) {
	s := &script{replies: []func(http.ResponseWriter, *http.Request){reply(429, "3", rateLimited)}}
	c, slept := scripted(t, s, WithRetries(2))
	_, err := c.Get(context.Background(), "job_1")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.Code != "RATE_LIMITED" || apiErr.RetryAfter != 3*time.Second {
		t.Fatalf("%v", err)
	}
	if len(s.requests) != 3 || !reflect.DeepEqual(*slept, []time.Duration{3 * time.Second, 3 * time.Second}) {
		t.Fatalf("%d requests, slept %v", len(s.requests), *slept)
	}
	// No Retry-After: half a second more each time.
	s2 := &script{replies: []func(http.ResponseWriter, *http.Request){reply(503, "", "")}}
	c2, slept2 := scripted(t, s2, WithRetries(2))
	if _, err := c2.Get(context.Background(), "job_1"); !isAPIError(err, 503, "HTTP_503") {
		t.Fatalf("%v", err)
	}
	if !reflect.DeepEqual(*slept2, []time.Duration{500 * time.Millisecond, time.Second}) {
		t.Fatalf("slept %v", *slept2)
	}
}

func TestOtherErrorsAreNotRetried(t *testing.T) {
	s := &script{replies: []func(http.ResponseWriter, *http.Request){
		reply(402, "", `{"error": {"code": "PAYMENT_REQUIRED", "message": "costs 300", "price_micros": 300}}`),
		reply(502, "", "<html>bad gateway</html>"),
	}}
	c, slept := scripted(t, s)
	_, err := c.Get(context.Background(), "job_1")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "PAYMENT_REQUIRED" || apiErr.Message != "costs 300" {
		t.Fatalf("%v", err)
	}
	var body struct {
		Error struct {
			Price int `json:"price_micros"`
		} `json:"error"`
	}
	if json.Unmarshal(apiErr.Body, &body) != nil || body.Error.Price != 300 {
		t.Fatalf("body %s", apiErr.Body)
	}
	_, err = c.Get(context.Background(), "job_1")
	if !errors.As(err, &apiErr) || apiErr.Code != "HTTP_502" || apiErr.Message != "<html>bad gateway</html>" {
		t.Fatalf("%v", err)
	}
	if len(s.requests) != 2 || len(*slept) != 0 {
		t.Fatalf("%d requests, slept %v", len(s.requests), *slept)
	}
}

func TestRunWaitsOnTheServerThenPolls(t *testing.T) {
	crop := `{"output": "o.png", "url": "u", "format": "png", "width": 4, "height": 3, "bytes": 99,
		"crop": {"x": 1, "y": 2, "width": 4, "height": 3}, "faces": [{"x": 1}]}`
	s := &script{replies: []func(http.ResponseWriter, *http.Request){
		reply(202, "", jobJSON("job_2", "queued", "null")),
		reply(200, "", jobJSON("job_2", "running", "null")),
		reply(200, "", jobJSON("job_2", "succeeded", crop)),
	}}
	c, slept := scripted(t, s, WithPollInterval(time.Second))
	job, err := c.Crop(context.Background(), &CropJob{Input: "a.png", Gravity: GravityFace,
		Width: Ptr[uint32](4), Height: Ptr[uint32](3)})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.requests[0].URL.Query().Get("wait"); got != "60" {
		t.Fatalf("?wait=%s", got)
	}
	if s.requests[1].URL.Path != "/v1/jobs/job_2" || s.requests[2].Method != "GET" || len(s.requests) != 3 {
		t.Fatalf("requests %v", s.requests)
	}
	if !reflect.DeepEqual(*slept, []time.Duration{time.Second}) {
		t.Fatalf("slept %v", *slept)
	}
	want := CropRect{X: 1, Y: 2, Width: 4, Height: 3}
	if job.Output != "o.png" || job.Width != 4 || job.Height != 3 || job.Bytes != 99 || *job.Crop != want ||
		job.Billing.QuotedMicros != 300 || job.CreatedAt.Year() != 2026 || !job.StartedAt.IsZero() {
		t.Fatalf("%+v", job)
	}
	var faces struct {
		Faces []struct{ X int } `json:"faces"`
	}
	if err := job.DecodeResult(&faces); err != nil || len(faces.Faces) != 1 || faces.Faces[0].X != 1 {
		t.Fatalf("faces %+v %v", faces, err)
	}
}

func TestServerWaitFitsTheDeadlines(t *testing.T) {
	s := &script{replies: []func(http.ResponseWriter, *http.Request){reply(200, "", jobJSON("job_3", "succeeded", "{}"))}}
	c, _ := scripted(t, s, WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if _, err := c.Run(context.Background(), map[string]string{"operation": "metadata"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c2, _ := scripted(t, s)
	if _, err := c2.Run(ctx, map[string]string{"operation": "metadata"}); err != nil {
		t.Fatal(err)
	}
	first, second := s.requests[0].URL.Query().Get("wait"), s.requests[1].URL.Query().Get("wait")
	if first != "5" || (second != "28" && second != "29") {
		t.Fatalf("?wait=%s under a 10 s HTTP timeout, ?wait=%s under a 30 s deadline", first, second)
	}
}

func TestWaitGivesUpWithTheJobID(t *testing.T) {
	s := &script{replies: []func(http.ResponseWriter, *http.Request){reply(200, "", jobJSON("job_4", "running", "null"))}}
	server := httptest.NewServer(s)
	defer server.Close()
	c := NewClient(server.URL, "k", WithWaitTimeout(30*time.Millisecond), WithPollInterval(time.Millisecond))
	_, err := c.Wait(context.Background(), "job_4")
	var waitErr *WaitError
	if !errors.As(err, &waitErr) || waitErr.JobID != "job_4" || waitErr.Status != StatusRunning ||
		!errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v", err)
	}
}

func TestFailedJobIsAnAPIError(t *testing.T) {
	failed := `{"id": "job_5", "operation": "crop", "status": "failed", "result": null,
		"error": {"code": "CROP_OUT_OF_BOUNDS", "message": "rect exceeds the 10x10 image"}, "billing": null}`
	s := &script{replies: []func(http.ResponseWriter, *http.Request){reply(200, "", failed)}}
	c, _ := scripted(t, s)
	job, err := c.Crop(context.Background(), &CropJob{Input: "a.png", Rect: &CropRect{X: 9, Width: 5, Height: 5}})
	var apiErr *APIError
	if job != nil || !errors.As(err, &apiErr) || apiErr.Code != "CROP_OUT_OF_BOUNDS" || apiErr.Status != 422 ||
		apiErr.Job.ID != "job_5" || apiErr.Message != "rect exceeds the 10x10 image" {
		t.Fatalf("%v %v", job, err)
	}
}

func TestCropJobJSON(t *testing.T) {
	// The spec's own example, built with the spec's structs.
	spec := CropJob{Operation: "crop", Input: "photo.jpg", Output: "cropped.jpg",
		Rect: &CropRect{X: 100, Y: 50, Width: 800, Height: 600}, Format: "jpeg", Quality: Ptr[uint8](90)}
	example := `{"operation": "crop", "input": "photo.jpg", "output": "cropped.jpg",
		"rect": {"x": 100, "y": 50, "width": 800, "height": 600}, "format": "jpeg", "quality": 90}`
	for name, encode := range map[string]func() ([]byte, error){
		"json.Marshal": func() ([]byte, error) { return json.Marshal(spec) },
		"specBody":     func() ([]byte, error) { return specBody(&spec) },
	} {
		data, err := encode()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := decodeJSON(t, data), decodeJSON(t, []byte(example)); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %s is not the spec's example", name, data)
		}
	}
	// Sent by Crop/Submit: "crop" when Operation is empty, no "output" when Output is.
	data, err := specBody(CropJob{Input: "p.jpg", Gravity: GravityFocalPoint, FocalX: Ptr(0.0),
		Width: Ptr[uint32](4), Height: Ptr[uint32](3)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"operation": "crop", "input": "p.jpg", "gravity": "focal_point", "focal_x": 0, "width": 4, "height": 3}`
	if got := decodeJSON(t, data); !reflect.DeepEqual(got, decodeJSON(t, []byte(want))) {
		t.Fatalf("%s", data)
	}
	if _, err := specBody([]int{1}); err == nil {
		t.Fatal("a JSON array went as a spec")
	}
}

func TestObjectPathKeepsSlashes(t *testing.T) {
	if got := objectPath("in/a b/ü?#.png"); got != "/v1/objects/in/a%20b/%C3%BC%3F%23.png" {
		t.Fatal(got)
	}
}

func decodeJSON(t *testing.T, data []byte) interface{} {
	t.Helper()
	var v interface{}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
