package imagefleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Every other call of the client against a live fleet (IMAGEFLEET_URL).

func TestLiveSubmitMapAndStruct(t *testing.T) {
	env := live(t)
	ctx := testContext(t)
	c := env.client()
	src := noise(40, 30, 4, false)
	obj, err := c.Upload(ctx, env.prefix+"in.png", bytes.NewReader(encodePNG(t, src)))
	if err != nil {
		t.Fatal(err)
	}
	if obj.Key != env.prefix+"in.png" || obj.Bytes != int64(len(encodePNG(t, src))) {
		t.Fatalf("upload answered %+v", obj)
	}

	// A map: rotate by 90 degrees, clockwise as in sharp.
	job, err := c.Submit(ctx, map[string]interface{}{
		"operation": "rotate", "input": env.prefix + "in.png", "output": env.prefix + "rotated.png", "angle": 90,
	})
	if err != nil {
		t.Fatal(err)
	}
	if job.Operation != "rotate" || job.Done() {
		t.Fatalf("submitted without a wait: %s %s", job.Operation, job.Status)
	}
	if job, err = c.Wait(ctx, job.ID); err != nil || job.Err() != nil {
		t.Fatalf("%v %v", err, job.Err())
	}
	if job.Width != 30 || job.Height != 40 || job.Crop != nil {
		t.Fatalf("rotated %dx%d, crop %v", job.Width, job.Height, job.Crop)
	}
	out, err := c.Download(ctx, job.Output)
	if err != nil {
		t.Fatal(err)
	}
	samePixels(t, decodeImage(t, out), src, func(x, y int) (int, int) { return y, 30 - 1 - x })

	// A struct of one's own: flop (a horizontal mirror), with Run.
	type flopJob struct {
		Operation string `json:"operation"`
		Input     string `json:"input"`
		Output    string `json:"output"`
		Flop      bool   `json:"flop"`
		Inline    bool   `json:"inline"`
	}
	job, err = c.Run(ctx, flopJob{"rotate", env.prefix + "in.png", env.prefix + "flop.png", true, true})
	if err != nil {
		t.Fatal(err)
	}
	data, err := job.Data()
	if err != nil || data == nil {
		t.Fatalf("no inline data: %v", err)
	}
	samePixels(t, decodeImage(t, data), src, func(x, y int) (int, int) { return 40 - 1 - x, y })
	var spec struct {
		Flop  bool    `json:"flop"`
		Angle float64 `json:"angle"`
	}
	if err := json.Unmarshal(job.Spec, &spec); err != nil || !spec.Flop || spec.Angle != 0 {
		t.Fatalf("spec as the fleet read it: %+v %v", spec, err)
	}

	// An operation that reports facts: metadata's result is read with DecodeResult.
	job, err = c.Run(ctx, map[string]string{"operation": "metadata", "input": env.prefix + "in.png"})
	if err != nil {
		t.Fatal(err)
	}
	var facts struct {
		Metadata struct {
			Width  int    `json:"width"`
			Height int    `json:"height"`
			Format string `json:"format"`
		} `json:"metadata"`
	}
	if err := job.DecodeResult(&facts); err != nil || facts.Metadata.Width != 40 ||
		facts.Metadata.Height != 30 || facts.Metadata.Format != "png" {
		t.Fatalf("metadata %s: %+v %v", job.Result, facts, err)
	}
}

func TestLiveGetWaitCancel(t *testing.T) {
	env := live(t)
	ctx := testContext(t)
	c := env.client()
	var flat bytes.Buffer // 25 MP of one colour: small to send, slow to blur
	big := image.NewGray(image.Rect(0, 0, 5000, 5000))
	for i := range big.Pix {
		big.Pix[i] = 90
	}
	if err := png.Encode(&flat, big); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upload(ctx, env.prefix+"big.png", &flat); err != nil {
		t.Fatal(err)
	}
	blur := map[string]interface{}{"operation": "blur", "input": env.prefix + "big.png", "sigma": 200}
	var ids []string
	for i := 0; i < 3; i++ { // two keep the test fleet's two CPU workers busy; the third waits
		job, err := c.Submit(ctx, blur)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, job.ID)
	}
	canceled, err := c.Cancel(ctx, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	if canceled.ID != ids[2] || canceled.Status != StatusCanceled {
		t.Fatalf("cancel answered %s %s", canceled.ID, canceled.Status)
	}
	got, err := c.Get(ctx, ids[2])
	if err != nil || got.Status != StatusCanceled || got.Billing.ChargedMicros != 0 {
		t.Fatalf("after cancel: %+v %v", got, err)
	}
	var apiErr *APIError
	if !errors.As(got.Err(), &apiErr) || apiErr.Code != CodeCanceled || apiErr.Job != got {
		t.Fatalf("a canceled job's Err: %v", got.Err())
	}
	// Wait returns an ended job whatever its outcome.
	waited, err := c.Wait(ctx, ids[0])
	if err != nil || waited.ID != ids[0] || waited.Status != StatusSucceeded || waited.Width != 5000 {
		t.Fatalf("wait: %+v %v", waited, err)
	}
	// Cancelling what ended is JOB_ENDED; unknown ids are NOT_FOUND.
	if _, err := c.Cancel(ctx, ids[0]); !isAPIError(err, http.StatusConflict, "JOB_ENDED") {
		t.Fatalf("cancel of an ended job: %v", err)
	}
	if _, err := c.Get(ctx, "job_00000000000000000000000000000000"); !isAPIError(err, 404, "NOT_FOUND") {
		t.Fatalf("get of an unknown job: %v", err)
	}
	if _, err := c.Wait(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
}

func TestLiveObjectsAndKeys(t *testing.T) {
	env := live(t)
	ctx := testContext(t)
	c := env.client()
	payload := []byte("not an image, just bytes \x00\x01\x02")
	key := env.prefix + "dir with space/ünï.bin"
	if _, err := c.Upload(ctx, key, bytes.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	var sink bytes.Buffer
	if n, err := c.DownloadTo(ctx, key, &sink); err != nil || n != int64(len(payload)) || !bytes.Equal(sink.Bytes(), payload) {
		t.Fatalf("downloaded %q (%d, %v)", sink.Bytes(), n, err)
	}
	if _, err := c.Download(ctx, env.prefix+"absent.bin"); !isAPIError(err, 404, "NOT_FOUND") {
		t.Fatalf("download of a missing key: %v", err)
	}
	stranger := NewClient(env.url, "not-a-key")
	if _, err := stranger.Download(ctx, key); !isAPIError(err, 401, "UNAUTHORIZED") {
		t.Fatalf("a bad key: %v", err)
	}
}

func TestLiveRateLimitRetries(t *testing.T) {
	env := live(t)
	ctx := testContext(t)
	// The account makes 1 request a second (bursts of 2): without retries some of five
	// quick requests are refused with 429 and a Retry-After ...
	impatient := NewClient(env.url, env.limitedKey, WithRetries(0))
	var refused *APIError
	for i := 0; i < 5 && refused == nil; i++ {
		_, err := impatient.Get(ctx, "job_00000000000000000000000000000000")
		if isAPIError(err, 429, "RATE_LIMITED") {
			errors.As(err, &refused)
		} else if !isAPIError(err, 404, "NOT_FOUND") {
			t.Fatal(err)
		}
	}
	if refused == nil || refused.RetryAfter < time.Second {
		t.Fatalf("no 429 with a Retry-After in five quick requests: %+v", refused)
	}
	// ... and with them, every one gets through (to the 404 an unknown job is).
	patient := NewClient(env.url, env.limitedKey)
	for i := 0; i < 5; i++ {
		if _, err := patient.Get(ctx, "job_00000000000000000000000000000000"); !isAPIError(err, 404, "NOT_FOUND") {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

func TestLiveWebhookReceiver(t *testing.T) {
	env := live(t)
	ctx := testContext(t)
	c := env.client()
	if _, err := c.Upload(ctx, env.prefix+"hook.png", bytes.NewReader(encodePNG(t, noise(16, 16, 5, false)))); err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		event *WebhookEvent
		err   error
		tamp  error
	}
	got := make(chan delivery, 8)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		event, err := VerifyWebhook(r.Header, body, env.secret)
		_, tampered := VerifyWebhook(r.Header, bytes.Replace(body, []byte(`"succeeded"`), []byte(`"failed"`), 1), env.secret)
		got <- delivery{event, err, tampered}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer server.Close()

	job, err := c.Run(ctx, map[string]interface{}{
		"operation": "crop", "input": env.prefix + "hook.png", "webhook_url": server.URL + "/hooks",
		"rect": map[string]int{"x": 0, "y": 0, "width": 4, "height": 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		if d.err != nil {
			t.Fatalf("the fleet's delivery does not verify: %v", d.err)
		}
		if d.event.Job == nil || d.event.Job.ID != job.ID || d.event.Job.Status != StatusSucceeded ||
			*d.event.Job.Crop != (CropRect{Width: 4, Height: 4}) || !strings.HasPrefix(d.event.ID, "msg_") {
			t.Fatalf("the delivery: %+v", d.event)
		}
		if !errors.Is(d.tamp, ErrWebhookSignature) {
			t.Fatalf("a tampered body verified: %v", d.tamp)
		}
	case <-ctx.Done():
		t.Fatal("no webhook came")
	}
}

func TestLivePythonSignedWebhook(t *testing.T) {
	env := live(t)
	var signed struct {
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
		Secret  string            `json:"secret"`
	}
	if err := json.Unmarshal([]byte(env.pyWebhook), &signed); err != nil {
		t.Fatal(err)
	}
	header := http.Header{}
	for k, v := range signed.Headers {
		header.Set(k, v)
	}
	event, err := VerifyWebhook(header, []byte(signed.Body), signed.Secret)
	if err != nil {
		t.Fatalf("a delivery signed by Python's hmac does not verify: %v", err)
	}
	if event.Job == nil || event.Job.ID != "job_py" || event.Job.Status != StatusFailed ||
		event.Job.Error.Code != "CROP_OUT_OF_BOUNDS" {
		t.Fatalf("event %+v", event)
	}
	if _, err := VerifyWebhook(MapHeader(signed.Headers), []byte(signed.Body+" "), signed.Secret); !errors.Is(err, ErrWebhookSignature) {
		t.Fatalf("one byte more still verified: %v", err)
	}
}
