package imagefleet

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// Standard Webhooks signatures made here by hand, with a known secret.

var (
	hookKey    = []byte("0123456789abcdef0123456789abcdef")
	hookSecret = "whsec_" + base64.StdEncoding.EncodeToString(hookKey)
	hookBody   = []byte(`{"id": "job_1", "operation": "crop", "status": "succeeded",
		"result": {"output": "c.png", "crop": {"x": 1, "y": 2, "width": 3, "height": 4}}}`)
)

func signHook(key []byte, id string, stamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(stamp, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func hookHeader(stamp int64, signature string) http.Header {
	h := http.Header{}
	h.Set("Webhook-Id", "msg_job_1")
	h.Set("Webhook-Timestamp", strconv.FormatInt(stamp, 10))
	h.Set("Webhook-Signature", signature)
	return h
}

func TestVerifyWebhookAccepts(t *testing.T) {
	now := time.Now().Unix()
	sig := signHook(hookKey, "msg_job_1", now, hookBody)
	event, err := VerifyWebhook(hookHeader(now, sig), hookBody, hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	if event.ID != "msg_job_1" || event.Job == nil || event.Job.ID != "job_1" || event.Job.Status != StatusSucceeded ||
		*event.Job.Crop != (CropRect{X: 1, Y: 2, Width: 3, Height: 4}) || event.Type != "" {
		t.Fatalf("%+v", event)
	}
	// Key rotation: several signatures, in one header or in several; any one may match.
	if _, err := VerifyWebhook(hookHeader(now, "v1,AAAA "+sig), hookBody, hookSecret); err != nil {
		t.Fatal(err)
	}
	h := hookHeader(now, "v1,AAAA")
	h.Add("Webhook-Signature", sig)
	if _, err := VerifyWebhook(h, hookBody, hookSecret); err != nil {
		t.Fatal(err)
	}
	// A plain map with lower-case names; a batch's webhook.
	batch := []byte(`{"type": "batch.done", "batch": {"id": "bat_1", "done": true}}`)
	m := MapHeader{"webhook-id": "msg_bat_1_done", "webhook-timestamp": strconv.FormatInt(now, 10),
		"webhook-signature": signHook(hookKey, "msg_bat_1_done", now, batch)}
	event, err = VerifyWebhook(m, batch, hookSecret)
	if err != nil || event.Type != "batch.done" || event.Job != nil || string(event.Batch) != `{"id": "bat_1", "done": true}` {
		t.Fatalf("%+v %v", event, err)
	}
	// Within the tolerance either way.
	v := WebhookVerifier{Secret: hookSecret, Tolerance: time.Minute, Now: func() time.Time { return time.Unix(now+59, 0) }}
	if _, err := v.Verify(hookHeader(now, sig), hookBody); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyWebhookRefuses(t *testing.T) {
	now := time.Now().Unix()
	otherKey := []byte("another key entirely, 32 bytes!!")
	for _, tc := range []struct {
		name   string
		header http.Header
		body   []byte
		secret string
		want   error
	}{
		{"tampered body", hookHeader(now, signHook(hookKey, "msg_job_1", now, hookBody)),
			append(append([]byte{}, hookBody...), ' '), hookSecret, ErrWebhookSignature},
		{"another secret", hookHeader(now, signHook(otherKey, "msg_job_1", now, hookBody)),
			hookBody, hookSecret, ErrWebhookSignature},
		{"another id", hookHeader(now, signHook(hookKey, "msg_job_2", now, hookBody)),
			hookBody, hookSecret, ErrWebhookSignature},
		{"timestamp changed", hookHeader(now+1, signHook(hookKey, "msg_job_1", now, hookBody)),
			hookBody, hookSecret, ErrWebhookSignature},
		{"stale", hookHeader(now-301, signHook(hookKey, "msg_job_1", now-301, hookBody)),
			hookBody, hookSecret, ErrWebhookStale},
		{"future", hookHeader(now+301, signHook(hookKey, "msg_job_1", now+301, hookBody)),
			hookBody, hookSecret, ErrWebhookStale},
		{"v2 only", hookHeader(now, "v2,"+signHook(hookKey, "msg_job_1", now, hookBody)[3:]),
			hookBody, hookSecret, ErrWebhookSignature},
		{"no signature", hookHeader(now, ""), hookBody, hookSecret, ErrWebhookHeaders},
		{"timestamp not a number", hookHeader(now, "v1,x"), hookBody, hookSecret, nil},
		{"secret not base64", hookHeader(now, signHook(hookKey, "msg_job_1", now, hookBody)),
			hookBody, "whsec_not base64!", ErrWebhookSecret},
		{"body not JSON", hookHeader(now, signHook(hookKey, "msg_job_1", now, []byte("[1"))),
			[]byte("[1"), hookSecret, ErrWebhookBody},
	} {
		if tc.want == nil { // the timestamp case
			tc.header.Set("Webhook-Timestamp", "soon")
			tc.want = ErrWebhookTimestamp
		}
		event, err := VerifyWebhook(tc.header, tc.body, tc.secret)
		if event != nil || !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, %v; want %v", tc.name, event, err, tc.want)
		}
	}
}
