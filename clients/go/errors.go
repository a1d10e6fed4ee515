package imagefleet

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// CodeCanceled is the Code of the *APIError for a job that ended canceled.
const CodeCanceled = "CANCELED"

// APIError is an error reply of the API (`{"error": {"code", "message"}}`), or a job that
// ended failed or canceled. Use errors.As to read it:
//
//	var apiErr *imagefleet.APIError
//	if errors.As(err, &apiErr) && apiErr.Code == "CROP_OUT_OF_BOUNDS" { ... }
type APIError struct {
	// Status is the HTTP status of the error reply. For a job that ended failed it is 422
	// (what the fleet answers for a job's error code on its synchronous routes); for a
	// canceled one, 409.
	Status int
	// Code is the fleet's error code: VALIDATION_ERROR, NOT_FOUND, CROP_OUT_OF_BOUNDS, ...;
	// CANCELED for a canceled job; HTTP_<status> for a reply without an error body.
	Code    string
	Message string
	// RetryAfter is the reply's Retry-After (429, 503), 0 when it had none.
	RetryAfter time.Duration
	// Job is the ended job when the error is a job's, else nil.
	Job *JobResult
	// Body is the error reply's JSON (402 also names the price and the balance).
	Body json.RawMessage
}

func (e *APIError) Error() string {
	if e.Job != nil {
		return fmt.Sprintf("imagefleet: job %s %s: %s: %s", e.Job.ID, e.Job.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("imagefleet: %s: %s (HTTP %d)", e.Code, e.Message, e.Status)
}

// readAPIError reads an error reply (status >= 400) into an *APIError.
func readAPIError(resp *http.Response) *APIError {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	apiErr := &APIError{
		Status:     resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
	}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error != nil && body.Error.Code != "" {
		apiErr.Code, apiErr.Message, apiErr.Body = body.Error.Code, body.Error.Message, data
		return apiErr
	}
	apiErr.Code = fmt.Sprintf("HTTP_%d", resp.StatusCode)
	apiErr.Message = strings.TrimSpace(string(truncate(data, 500)))
	return apiErr
}

func truncate(data []byte, n int) []byte {
	if len(data) > n {
		return data[:n]
	}
	return data
}
