package imagefleet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// MaxUploadBytes is the largest object the fleet takes in one PUT.
const MaxUploadBytes = 50 << 20

// Object is an object of your namespace, as an upload answers it.
type Object struct {
	Key   string `json:"key"`
	Bytes int64  `json:"bytes"`
	URL   string `json:"url"`
}

// Upload stores the bytes r gives (up to MaxUploadBytes) under key in your namespace,
// replacing any object there; jobs name it as their input.
func (c *Client) Upload(ctx context.Context, key string, r io.Reader) (*Object, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxUploadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("imagefleet: reading the upload for %q: %w", key, err)
	}
	if len(data) > MaxUploadBytes {
		return nil, fmt.Errorf("imagefleet: the upload for %q is over %d bytes", key, MaxUploadBytes)
	}
	req := request{
		method: http.MethodPut,
		path:   objectPath(key),
		body:   data,
		header: http.Header{"Content-Type": {"application/octet-stream"}},
	}
	var obj Object
	if err := c.call(ctx, req, &obj); err != nil {
		return nil, err
	}
	return &obj, nil
}

// Download returns the object stored under key (*APIError NOT_FOUND if there is none).
func (c *Client) Download(ctx context.Context, key string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := c.DownloadTo(ctx, key, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DownloadTo copies the object stored under key to w, and returns how many bytes it wrote.
func (c *Client) DownloadTo(ctx context.Context, key string, w io.Writer) (int64, error) {
	resp, release, err := c.send(ctx, request{method: http.MethodGet, path: objectPath(key)})
	if err != nil {
		return 0, err
	}
	defer release()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("imagefleet: downloading %q: %w", key, err)
	}
	return n, nil
}

// objectPath escapes each segment of a key and keeps its slashes.
func objectPath(key string) string {
	segments := strings.Split(key, "/")
	for i, s := range segments {
		segments[i] = url.PathEscape(s)
	}
	return "/v1/objects/" + strings.Join(segments, "/")
}
