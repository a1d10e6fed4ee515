package imagefleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	mrand "math/rand"
	"os"
	"testing"
	"time"
)

// The live tests talk to the fleet at IMAGEFLEET_URL; without it they skip (offline
// `go test`). With it, every other variable they need must be set too:
//
//	IMAGEFLEET_API_KEY          an account with credit
//	IMAGEFLEET_WEBHOOK_SECRET   that account's whsec_ secret
//	IMAGEFLEET_LIMITED_API_KEY  an account limited to 1 request a second
//	IMAGEFLEET_PY_WEBHOOK       a delivery signed in Python: {"headers", "body", "secret"}
type liveEnv struct {
	url, key, secret, limitedKey, pyWebhook string
	prefix                                  string // this run's object keys start with it
}

func live(t *testing.T) liveEnv {
	t.Helper()
	url := os.Getenv("IMAGEFLEET_URL")
	if url == "" {
		t.Skip("IMAGEFLEET_URL is not set: no fleet to test against")
	}
	env := liveEnv{url: url}
	for name, dst := range map[string]*string{
		"IMAGEFLEET_API_KEY":         &env.key,
		"IMAGEFLEET_WEBHOOK_SECRET":  &env.secret,
		"IMAGEFLEET_LIMITED_API_KEY": &env.limitedKey,
		"IMAGEFLEET_PY_WEBHOOK":      &env.pyWebhook,
	} {
		if *dst = os.Getenv(name); *dst == "" {
			t.Fatalf("IMAGEFLEET_URL is set but %s is not", name)
		}
	}
	var raw [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		t.Fatal(err)
	}
	env.prefix = "go-test-" + hex.EncodeToString(raw[:]) + "/"
	return env
}

func (e liveEnv) client(opts ...Option) *Client {
	return NewClient(e.url, e.key, opts...)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// noise is a w x h RGB picture of seeded random pixels; gray makes R = G = B.
func noise(w, h int, seed int64, gray bool) *image.RGBA {
	rng := mrand.New(mrand.NewSource(seed))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b := uint8(rng.Intn(256)), uint8(rng.Intn(256)), uint8(rng.Intn(256))
			if gray {
				g, b = r, r
			}
			img.SetRGBA(x, y, color.RGBA{r, g, b, 255})
		}
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeImage(t *testing.T, data []byte) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the output does not decode: %v", err)
	}
	return img
}

func rgbAt(img image.Image, x, y int) [3]uint32 {
	r, g, b, _ := img.At(x, y).RGBA()
	return [3]uint32{r >> 8, g >> 8, b >> 8}
}

// samePixels checks that every pixel of got is want's pixel at at(x, y).
func samePixels(t *testing.T, got image.Image, want image.Image, at func(x, y int) (int, int)) {
	t.Helper()
	b := got.Bounds()
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			sx, sy := at(x, y)
			if g, w := rgbAt(got, b.Min.X+x, b.Min.Y+y), rgbAt(want, sx, sy); g != w {
				t.Fatalf("pixel (%d, %d) is %v; the input's (%d, %d) is %v", x, y, g, sx, sy, w)
			}
		}
	}
}

// highestVariance finds the w x h window of the gray picture with the highest variance
// by brute force (top-most, then left-most among equals): n * sum(L^2) - sum(L)^2.
func highestVariance(img *image.RGBA, w, h int) CropRect {
	b := img.Bounds()
	var best int64 = -1
	var at CropRect
	n := int64(w * h)
	for y := 0; y+h <= b.Dy(); y++ {
		for x := 0; x+w <= b.Dx(); x++ {
			var s1, s2 int64
			for yy := y; yy < y+h; yy++ {
				for xx := x; xx < x+w; xx++ {
					v := int64(img.RGBAAt(xx, yy).R)
					s1 += v
					s2 += v * v
				}
			}
			if score := n*s2 - s1*s1; score > best {
				best, at = score, CropRect{X: uint32(x), Y: uint32(y), Width: uint32(w), Height: uint32(h)}
			}
		}
	}
	return at
}
