package imagefleet

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// JobStatus is a job's state: queued, running, succeeded, failed or canceled.
type JobStatus string

const (
	StatusQueued    JobStatus = "queued"
	StatusRunning   JobStatus = "running"
	StatusSucceeded JobStatus = "succeeded"
	StatusFailed    JobStatus = "failed"
	StatusCanceled  JobStatus = "canceled"
)

// Done reports whether the state is final (succeeded, failed or canceled).
func (s JobStatus) Done() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCanceled
}

// JobError is a failed job's error.
type JobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Billing is what a job was quoted, held and charged.
type Billing struct {
	Megapixels    float64 `json:"megapixels"`
	QuotedMicros  int64   `json:"quoted_micros"`
	ChargedMicros int64   `json:"charged_micros"`
	State         string  `json:"state"` // held, captured or released
}

// JobResult is a job object of the API. The fields of its `result` that image-making
// operations share are copied out (Output ... DataBase64, and Crop for crops); every
// other operation's fields are in Result (see DecodeResult), the whole object in Raw.
type JobResult struct {
	ID        string
	Operation string
	Status    JobStatus

	Output     string    // the output's key in your namespace
	URL        string    // where to GET the output (with your API key)
	Format     string    // png, jpeg, webp, avif, ...
	Width      int       // the output's size in pixels
	Height     int       //
	Bytes      int64     // the output's length
	Crop       *CropRect // the rectangle a crop used
	DataBase64 string    // the output itself, when the spec asked for `inline`

	Error      *JobError // why a failed job failed
	Billing    Billing
	Attempts   int
	CreatedAt  time.Time
	StartedAt  time.Time // zero until a worker takes the job
	FinishedAt time.Time // zero until it ends

	Spec   json.RawMessage // the spec as the fleet read it (defaults filled in)
	Result json.RawMessage // the job's `result` object (null until it succeeds)
	Raw    json.RawMessage // the whole job object
}

type jobWire struct {
	ID         string          `json:"id"`
	Operation  string          `json:"operation"`
	Status     JobStatus       `json:"status"`
	Spec       json.RawMessage `json:"spec"`
	Result     json.RawMessage `json:"result"`
	Error      *JobError       `json:"error"`
	Billing    *Billing        `json:"billing"`
	Attempts   int             `json:"attempts"`
	CreatedAt  *time.Time      `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
}

type resultWire struct {
	Output     string    `json:"output"`
	URL        string    `json:"url"`
	Format     string    `json:"format"`
	Width      int       `json:"width"`
	Height     int       `json:"height"`
	Bytes      int64     `json:"bytes"`
	Crop       *CropRect `json:"crop"`
	DataBase64 string    `json:"data_base64"`
}

// UnmarshalJSON reads a job object (a reply of the jobs routes, or a job webhook's body).
func (j *JobResult) UnmarshalJSON(data []byte) error {
	var w jobWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	if w.ID == "" || w.Status == "" {
		return errors.New("imagefleet: not a job object (no id or status)")
	}
	*j = JobResult{
		ID: w.ID, Operation: w.Operation, Status: w.Status, Error: w.Error,
		Attempts: w.Attempts, Spec: w.Spec, Result: w.Result,
		Raw: append(json.RawMessage(nil), data...),
	}
	if w.Billing != nil {
		j.Billing = *w.Billing
	}
	for _, t := range []struct {
		from *time.Time
		to   *time.Time
	}{{w.CreatedAt, &j.CreatedAt}, {w.StartedAt, &j.StartedAt}, {w.FinishedAt, &j.FinishedAt}} {
		if t.from != nil {
			*t.to = *t.from
		}
	}
	var r resultWire
	if len(w.Result) > 0 && string(w.Result) != "null" {
		if err := json.Unmarshal(w.Result, &r); err != nil {
			return fmt.Errorf("imagefleet: job %s: reading its result: %w", w.ID, err)
		}
	}
	j.Output, j.URL, j.Format, j.Crop, j.DataBase64 = r.Output, r.URL, r.Format, r.Crop, r.DataBase64
	j.Width, j.Height, j.Bytes = r.Width, r.Height, r.Bytes
	return nil
}

// Done reports whether the job has ended.
func (j *JobResult) Done() bool { return j.Status.Done() }

// OK reports whether the job succeeded.
func (j *JobResult) OK() bool { return j.Status == StatusSucceeded }

// Err is nil for a job that has not ended or succeeded, and an *APIError for one that
// failed (its error code) or was canceled (CodeCanceled).
func (j *JobResult) Err() error {
	switch j.Status {
	case StatusFailed:
		e := JobError{Code: "UNKNOWN"}
		if j.Error != nil {
			e = *j.Error
		}
		return &APIError{Status: http.StatusUnprocessableEntity, Code: e.Code, Message: e.Message, Job: j}
	case StatusCanceled:
		return &APIError{Status: http.StatusConflict, Code: CodeCanceled, Message: "the job was canceled", Job: j}
	}
	return nil
}

// Data is the output itself, decoded from DataBase64 (nil when the spec did not ask
// for `inline`).
func (j *JobResult) Data() ([]byte, error) {
	if j.DataBase64 == "" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(j.DataBase64)
}

// DecodeResult unmarshals the job's `result` into v: the fields of operations that
// report facts (metadata, dominant-color, ocr, ...), or a crop's `faces`.
func (j *JobResult) DecodeResult(v interface{}) error {
	if len(j.Result) == 0 || string(j.Result) == "null" {
		return fmt.Errorf("imagefleet: job %s (%s) has no result", j.ID, j.Status)
	}
	return json.Unmarshal(j.Result, v)
}

// WaitError is returned when a wait ends (its context is done, or the client's wait
// timeout passed) before the job did. The job goes on; Get or Cancel it by JobID.
type WaitError struct {
	JobID  string
	Status JobStatus // as last seen ("" if never)
	Err    error     // context.DeadlineExceeded or context.Canceled
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("imagefleet: job %s still %s: %v", e.JobID, e.Status, e.Err)
}

func (e *WaitError) Unwrap() error { return e.Err }

// SubmitOption adjusts one Submit.
type SubmitOption func(*submitOptions)

type submitOptions struct {
	idempotencyKey string
	wait           time.Duration
}

// WithIdempotencyKey sends your own Idempotency-Key: for 24 hours the same key and spec
// give back the same job. Without it Submit makes one per call, so that its own retries
// of a 429 or 503 never make a second job.
func WithIdempotencyKey(key string) SubmitOption {
	return func(o *submitOptions) { o.idempotencyKey = key }
}

// WithServerWait asks the server to hold the reply until the job ends, up to d (at most
// MaxServerWait; shorter if the context's deadline comes first).
func WithServerWait(d time.Duration) SubmitOption {
	return func(o *submitOptions) { o.wait = d }
}

// Submit enqueues a job. spec is any value that marshals to a JSON job spec with its
// "operation" — a *CropJob, a struct of your own, a map[string]interface{} — or the
// JSON itself as json.RawMessage or []byte. It returns the job as it is when the reply
// leaves (ended, with WithServerWait, if it ended in time).
func (c *Client) Submit(ctx context.Context, spec interface{}, opts ...SubmitOption) (*JobResult, error) {
	var o submitOptions
	for _, opt := range opts {
		opt(&o)
	}
	body, err := specBody(spec)
	if err != nil {
		return nil, err
	}
	if o.idempotencyKey == "" {
		o.idempotencyKey = newIdempotencyKey()
	}
	req := request{
		method: http.MethodPost,
		path:   "/v1/jobs",
		body:   body,
		header: http.Header{"Content-Type": {"application/json"}},
	}
	if o.idempotencyKey != "" {
		req.header.Set("Idempotency-Key", o.idempotencyKey)
	}
	if wait := c.serverWait(ctx, o.wait); wait > 0 {
		req.query = url.Values{"wait": {strconv.Itoa(int(wait / time.Second))}}
		req.hold = wait
	}
	var job JobResult
	if err := c.call(ctx, req, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// Get returns the job as it is now (*APIError NOT_FOUND for unknown ids and other
// accounts' jobs).
func (c *Client) Get(ctx context.Context, jobID string) (*JobResult, error) {
	var job JobResult
	if err := c.call(ctx, request{method: http.MethodGet, path: jobPath(jobID)}, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// Cancel cancels a job that has not ended and returns it (*APIError JOB_ENDED, 409,
// for one that already ended). A canceled job writes nothing and is not charged.
func (c *Client) Cancel(ctx context.Context, jobID string) (*JobResult, error) {
	var job JobResult
	if err := c.call(ctx, request{method: http.MethodDelete, path: jobPath(jobID)}, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// Wait looks at the job until it ends and returns it, whatever its outcome (see
// JobResult.Err). It gives up with a *WaitError when ctx is done or the client's wait
// timeout passes.
func (c *Client) Wait(ctx context.Context, jobID string) (*JobResult, error) {
	ctx, cancel := c.waitContext(ctx)
	defer cancel()
	return c.follow(ctx, jobID, "")
}

// Run submits the job, follows it until it ends (bounded by ctx and the client's wait
// timeout) and returns it once it succeeded; a failed or canceled job is an *APIError.
func (c *Client) Run(ctx context.Context, spec interface{}, opts ...SubmitOption) (*JobResult, error) {
	ctx, cancel := c.waitContext(ctx)
	defer cancel()
	job, err := c.Submit(ctx, spec, append([]SubmitOption{WithServerWait(MaxServerWait)}, opts...)...)
	if err != nil {
		return nil, err
	}
	if !job.Done() {
		if job, err = c.follow(ctx, job.ID, job.Status); err != nil {
			return nil, err
		}
	}
	if err := job.Err(); err != nil {
		return nil, err
	}
	return job, nil
}

func (c *Client) follow(ctx context.Context, jobID string, seen JobStatus) (*JobResult, error) {
	delay := c.pollInterval
	for {
		job, err := c.Get(ctx, jobID)
		if err != nil {
			if ctx.Err() != nil {
				return nil, &WaitError{JobID: jobID, Status: seen, Err: ctx.Err()}
			}
			return nil, err
		}
		if job.Done() {
			return job, nil
		}
		seen = job.Status
		if err := c.sleep(ctx, delay); err != nil {
			return nil, &WaitError{JobID: jobID, Status: seen, Err: err}
		}
		if delay = delay * 3 / 2; delay > 2*time.Second {
			delay = 2 * time.Second
		}
	}
}

func (c *Client) waitContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.waitTimeout > 0 {
		return context.WithTimeout(ctx, c.waitTimeout)
	}
	return context.WithCancel(ctx)
}

// specBody is the JSON of a spec; it must be an object.
func specBody(spec interface{}) ([]byte, error) {
	var body []byte
	switch s := spec.(type) {
	case json.RawMessage:
		body = s
	case []byte:
		body = s
	case *CropJob:
		body, _ = json.Marshal(cropWire(s))
	case CropJob:
		body, _ = json.Marshal(cropWire(&s))
	default:
		var err error
		if body, err = json.Marshal(spec); err != nil {
			return nil, fmt.Errorf("imagefleet: the spec does not marshal to JSON: %w", err)
		}
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil || probe == nil {
		return nil, errors.New("imagefleet: a job spec must be a JSON object")
	}
	return body, nil
}

func jobPath(jobID string) string {
	return "/v1/jobs/" + url.PathEscape(jobID)
}

func newIdempotencyKey() string {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "" // no key: the request still goes, without the retry guarantee
	}
	return "go-" + hex.EncodeToString(raw[:])
}
