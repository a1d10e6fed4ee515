package imagefleet

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"math/rand"
	"net/http"
	"testing"
)

// The crop, as the spec writes it, against a live fleet (IMAGEFLEET_URL).

func TestLiveCropRect(t *testing.T) {
	env := live(t)
	ctx := testContext(t)
	c := env.client()
	src := noise(160, 120, 1, false)
	if _, err := c.Upload(ctx, env.prefix+"noise.png", bytes.NewReader(encodePNG(t, src))); err != nil {
		t.Fatal(err)
	}

	rect := CropRect{X: 10, Y: 5, Width: 50, Height: 40}
	job, err := c.Crop(ctx, &CropJob{
		Operation: "crop",
		Input:     env.prefix + "noise.png",
		Output:    env.prefix + "rect.png",
		Rect:      &rect,
		Format:    "png",
		Inline:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != StatusSucceeded || job.Operation != "crop" || job.ID == "" {
		t.Fatalf("job %s %s %s", job.ID, job.Operation, job.Status)
	}
	if job.Output != env.prefix+"rect.png" || job.Format != "png" || job.Width != 50 || job.Height != 40 {
		t.Fatalf("result %s %s %dx%d", job.Output, job.Format, job.Width, job.Height)
	}
	if job.Crop == nil || *job.Crop != rect {
		t.Fatalf("the crop used is %+v, not the rect asked for %+v", job.Crop, rect)
	}
	if job.Billing.State != "captured" || job.Billing.ChargedMicros <= 0 ||
		job.Billing.ChargedMicros != job.Billing.QuotedMicros {
		t.Fatalf("billing %+v", job.Billing)
	}

	out, err := c.Download(ctx, job.Output)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(out)) != job.Bytes {
		t.Fatalf("downloaded %d bytes, the result says %d", len(out), job.Bytes)
	}
	if inline, err := job.Data(); err != nil || !bytes.Equal(inline, out) {
		t.Fatalf("data_base64 (%d bytes, %v) is not the stored output", len(inline), err)
	}
	got := decodeImage(t, out)
	if b := got.Bounds(); b.Dx() != 50 || b.Dy() != 40 {
		t.Fatalf("the output is %dx%d", b.Dx(), b.Dy())
	}
	samePixels(t, got, src, func(x, y int) (int, int) { return x + 10, y + 5 })
}

func TestLiveCropGravity(t *testing.T) {
	env := live(t)
	ctx := testContext(t)
	c := env.client()

	// Gray, nearly flat (100..109) but for one noisy 40x30 patch at (47, 33).
	rng := rand.New(rand.NewSource(7))
	src := image.NewRGBA(image.Rect(0, 0, 96, 72))
	for y := 0; y < 72; y++ {
		for x := 0; x < 96; x++ {
			v := uint8(100 + rng.Intn(10))
			if x >= 47 && x < 87 && y >= 33 && y < 63 {
				v = uint8(rng.Intn(256))
			}
			src.SetRGBA(x, y, color.RGBA{v, v, v, 255})
		}
	}
	if _, err := c.Upload(ctx, env.prefix+"gray.png", bytes.NewReader(encodePNG(t, src))); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		job    CropJob
		want   CropRect // computed here, independently of the fleet
		output string   // "" -> the fleet's default key
	}{
		{
			name: "center",
			job:  CropJob{Gravity: GravityCenter, Width: Ptr[uint32](30), Height: Ptr[uint32](20)},
			want: CropRect{X: (96 - 30) / 2, Y: (72 - 20) / 2, Width: 30, Height: 20},
		},
		{
			name: "focal_point",
			// centred on (96, 0), the top-right corner, then moved back inside
			job: CropJob{Gravity: GravityFocalPoint, FocalX: Ptr(1.0), FocalY: Ptr(0.0),
				Width: Ptr[uint32](30), Height: Ptr[uint32](20)},
			want:   CropRect{X: 96 - 30, Y: 0, Width: 30, Height: 20},
			output: "focal.png",
		},
		{
			name:   "entropy",
			job:    CropJob{Gravity: GravityEntropy, Width: Ptr[uint32](40), Height: Ptr[uint32](30)},
			want:   highestVariance(src, 40, 30),
			output: "entropy.png",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.job
			spec.Input = env.prefix + "gray.png"
			if tc.output != "" {
				spec.Output = env.prefix + tc.output
			}
			job, err := c.Crop(ctx, &spec)
			if err != nil {
				t.Fatal(err)
			}
			if job.Crop == nil || *job.Crop != tc.want {
				t.Fatalf("gravity %s used %+v; expected %+v", tc.name, job.Crop, tc.want)
			}
			want := spec.Output
			if want == "" { // the fleet's own key for an output left unnamed
				want = "jobs/" + job.ID + "/output.png"
			}
			if job.Output != want || job.Width != int(tc.want.Width) || job.Height != int(tc.want.Height) {
				t.Fatalf("result %s %dx%d", job.Output, job.Width, job.Height)
			}
			out, err := c.Download(ctx, job.Output)
			if err != nil {
				t.Fatal(err)
			}
			samePixels(t, decodeImage(t, out), src, func(x, y int) (int, int) {
				return x + int(tc.want.X), y + int(tc.want.Y)
			})
		})
	}
	if got := highestVariance(src, 40, 30); got != (CropRect{X: 47, Y: 33, Width: 40, Height: 30}) {
		t.Fatalf("the noisy patch is not the busiest window: %+v", got) // the fixture itself
	}
}

func TestLiveCropOutOfBounds(t *testing.T) {
	env := live(t)
	ctx := testContext(t)
	c := env.client()
	if _, err := c.Upload(ctx, env.prefix+"small.png", bytes.NewReader(encodePNG(t, noise(64, 48, 2, false)))); err != nil {
		t.Fatal(err)
	}
	for name, spec := range map[string]*CropJob{
		"rect": {Operation: "crop", Input: env.prefix + "small.png", Output: env.prefix + "never.png",
			Rect: &CropRect{X: 40, Y: 0, Width: 30, Height: 10}},
		"gravity": {Input: env.prefix + "small.png", Gravity: GravityCenter,
			Width: Ptr[uint32](65), Height: Ptr[uint32](10)},
	} {
		job, err := c.Crop(ctx, spec)
		var apiErr *APIError
		if job != nil || !errors.As(err, &apiErr) {
			t.Fatalf("%s: expected an *APIError, got %v, %v", name, job, err)
		}
		if apiErr.Code != "CROP_OUT_OF_BOUNDS" || apiErr.Status != http.StatusUnprocessableEntity {
			t.Fatalf("%s: %v", name, apiErr)
		}
		if apiErr.Job == nil || apiErr.Job.Status != StatusFailed || apiErr.Job.Error.Code != apiErr.Code ||
			apiErr.Job.Billing.State != "released" || apiErr.Job.Billing.ChargedMicros != 0 {
			t.Fatalf("%s: the failed job %+v", name, apiErr.Job)
		}
	}
	if _, err := c.Download(ctx, env.prefix+"never.png"); !isAPIError(err, http.StatusNotFound, "NOT_FOUND") {
		t.Fatalf("a failed crop wrote its output: %v", err)
	}
}

func TestLiveCropRefusedAtSubmission(t *testing.T) {
	env := live(t)
	ctx := testContext(t)
	c := env.client()
	if _, err := c.Upload(ctx, env.prefix+"small.png", bytes.NewReader(encodePNG(t, noise(8, 8, 3, false)))); err != nil {
		t.Fatal(err)
	}
	// Neither rect nor gravity: the gateway refuses the spec, no job is made.
	_, err := c.Crop(ctx, &CropJob{Input: env.prefix + "small.png"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != "VALIDATION_ERROR" || apiErr.Job != nil {
		t.Fatalf("expected 400 VALIDATION_ERROR, got %v", err)
	}
	// An input that is not there.
	_, err = c.Crop(ctx, &CropJob{Input: env.prefix + "absent.png", Rect: &CropRect{Width: 1, Height: 1}})
	if !isAPIError(err, http.StatusNotFound, "NOT_FOUND") {
		t.Fatalf("expected 404 NOT_FOUND, got %v", err)
	}
	// Another operation's spec is not a crop.
	if _, err := c.Crop(ctx, &CropJob{Operation: "blur", Input: env.prefix + "small.png"}); err == nil {
		t.Fatal("Crop sent a blur")
	}
}

func isAPIError(err error, status int, code string) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Status == status && apiErr.Code == code
}
