package imagefleet

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// DefaultWebhookTolerance is how far a webhook's timestamp may be from now, either way.
const DefaultWebhookTolerance = 5 * time.Minute

// Why VerifyWebhook refused a delivery (compare with errors.Is).
var (
	ErrWebhookHeaders   = errors.New("imagefleet: webhook: missing webhook-id, -timestamp or -signature header")
	ErrWebhookTimestamp = errors.New("imagefleet: webhook: webhook-timestamp is not an integer")
	ErrWebhookStale     = errors.New("imagefleet: webhook: webhook-timestamp is outside the tolerance")
	ErrWebhookSecret    = errors.New("imagefleet: webhook: the secret is not whsec_<base64>")
	ErrWebhookSignature = errors.New("imagefleet: webhook: no matching v1 signature")
	ErrWebhookBody      = errors.New("imagefleet: webhook: the body is not a JSON object")
)

// WebhookEvent is a verified webhook delivery. A job's webhook carries the job object
// (Job); a batch's end carries {"type": "batch.done", "batch": {...}} (Type, Batch).
type WebhookEvent struct {
	ID    string          // the webhook-id header (the same on every retry of a delivery)
	Type  string          // "batch.done" for a batch; empty for a job's webhook
	Job   *JobResult      // the job, for a job's webhook
	Batch json.RawMessage // the batch, for batch.done
	Raw   json.RawMessage // the body
}

// WebhookVerifier checks Standard Webhooks signatures with an account's secret.
type WebhookVerifier struct {
	Secret    string           // "whsec_<base64 key>", as `imagefleet accounts` prints it
	Tolerance time.Duration    // 0: DefaultWebhookTolerance
	Now       func() time.Time // nil: time.Now
}

// Header is what Verify reads the webhook-* headers from: an http.Header, or a
// map[string]string wrapped by MapHeader.
type Header interface{ Get(name string) string }

// VerifyWebhook checks a delivery with the account's secret (5 minutes of tolerance) and
// returns its payload. Pass it the request's headers and its body, unread before:
//
//	body, _ := io.ReadAll(r.Body)
//	event, err := imagefleet.VerifyWebhook(r.Header, body, secret)
func VerifyWebhook(header Header, body []byte, secret string) (*WebhookEvent, error) {
	return WebhookVerifier{Secret: secret}.Verify(header, body)
}

// Verify checks the signature (HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}"
// keyed by the secret's base64 part; any one of the space-separated "v1,<base64>"
// signatures may match, for key rotation) and the timestamp, then reads the body.
func (v WebhookVerifier) Verify(header Header, body []byte) (*WebhookEvent, error) {
	msgID := header.Get("webhook-id")
	stamp := header.Get("webhook-timestamp")
	signatures := header.Get("webhook-signature")
	if h, ok := header.(interface{ Values(string) []string }); ok {
		signatures = strings.Join(h.Values("webhook-signature"), " ") // one per header line too
	}
	if msgID == "" || stamp == "" || strings.TrimSpace(signatures) == "" {
		return nil, ErrWebhookHeaders
	}
	sentAt, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return nil, ErrWebhookTimestamp
	}
	now, tolerance := time.Now(), v.Tolerance
	if v.Now != nil {
		now = v.Now()
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	if age := now.Sub(time.Unix(sentAt, 0)); age > tolerance || -age > tolerance {
		return nil, ErrWebhookStale // too old (a replay) or too far ahead
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v.Secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, ErrWebhookSecret
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID + "." + stamp + "."))
	mac.Write(body)
	expected := []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	for _, candidate := range strings.Fields(signatures) {
		version, sig, _ := strings.Cut(candidate, ",")
		if version == "v1" && hmac.Equal([]byte(sig), expected) {
			return readWebhook(msgID, body)
		}
	}
	return nil, ErrWebhookSignature
}

func readWebhook(msgID string, body []byte) (*WebhookEvent, error) {
	var probe struct {
		Type  string          `json:"type"`
		Batch json.RawMessage `json:"batch"`
		ID    string          `json:"id"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, ErrWebhookBody
	}
	event := &WebhookEvent{ID: msgID, Type: probe.Type, Batch: probe.Batch, Raw: body}
	if probe.ID != "" {
		var job JobResult
		if err := json.Unmarshal(body, &job); err == nil {
			event.Job = &job
		}
	}
	return event, nil
}

// MapHeader lets Verify read headers from a plain map (any case of the names).
type MapHeader map[string]string

// Get returns the value of the header name, matched case-insensitively.
func (m MapHeader) Get(name string) string {
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
