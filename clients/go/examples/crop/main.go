// Command crop runs the crop operation three ways against a fleet: by rectangle, by
// gravity, and a rectangle outside the image, whose *APIError it prints.
//
//	IMAGEFLEET_URL=http://127.0.0.1:8080 IMAGEFLEET_API_KEY=$(cat var/dev-api-key) go run ./examples/crop
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"log"
	"os"
	"strings"
	"time"

	imagefleet "github.com/imagefleet/imagefleet-go"
)

func main() {
	log.SetFlags(0)
	baseURL := getenv("IMAGEFLEET_URL", "http://127.0.0.1:8080")
	apiKey := os.Getenv("IMAGEFLEET_API_KEY")
	if apiKey == "" { // the local fleet's dev key, when run from the repository's root
		data, err := os.ReadFile("var/dev-api-key")
		if err != nil {
			log.Fatal("set IMAGEFLEET_API_KEY (or run next to var/dev-api-key)")
		}
		apiKey = strings.TrimSpace(string(data))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := imagefleet.NewClient(baseURL, apiKey)

	// An input of 1200x800, made here so that the example needs no file.
	var photo bytes.Buffer
	if err := jpeg.Encode(&photo, gradient(1200, 800), &jpeg.Options{Quality: 90}); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Upload(ctx, "examples/photo.jpg", &photo); err != nil {
		log.Fatal(err)
	}

	// 1. A rectangle, as the spec's example.
	job, err := c.Crop(ctx, &imagefleet.CropJob{
		Operation: "crop",
		Input:     "examples/photo.jpg",
		Output:    "examples/cropped.jpg",
		Rect:      &imagefleet.CropRect{X: 100, Y: 50, Width: 800, Height: 600},
		Format:    "jpeg",
		Quality:   imagefleet.Ptr[uint8](90),
	})
	if err != nil {
		log.Fatal(err)
	}
	report("rect", job)

	// 2. Gravity: the 400x300 window around a focal point, and the centred one.
	job, err = c.Crop(ctx, &imagefleet.CropJob{
		Operation: "crop",
		Input:     "examples/photo.jpg",
		Output:    "examples/focal.jpg",
		Gravity:   imagefleet.GravityFocalPoint,
		FocalX:    imagefleet.Ptr(0.3),
		FocalY:    imagefleet.Ptr(0.2),
		Width:     imagefleet.Ptr[uint32](400),
		Height:    imagefleet.Ptr[uint32](300),
	})
	if err != nil {
		log.Fatal(err)
	}
	report("focal_point", job)
	job, err = c.Crop(ctx, &imagefleet.CropJob{
		Input:   "examples/photo.jpg",
		Output:  "examples/center.webp",
		Gravity: imagefleet.GravityCenter,
		Width:   imagefleet.Ptr[uint32](400),
		Height:  imagefleet.Ptr[uint32](300),
		Format:  "webp",
	})
	if err != nil {
		log.Fatal(err)
	}
	report("center", job)

	// 3. A rectangle that leaves the image: the job fails with CROP_OUT_OF_BOUNDS.
	_, err = c.Crop(ctx, &imagefleet.CropJob{
		Operation: "crop",
		Input:     "examples/photo.jpg",
		Output:    "examples/never.jpg",
		Rect:      &imagefleet.CropRect{X: 1000, Y: 700, Width: 800, Height: 600},
	})
	var apiErr *imagefleet.APIError
	if !errors.As(err, &apiErr) {
		log.Fatalf("out of bounds: expected an *APIError, got %v", err)
	}
	fmt.Printf("out of bounds: %s (HTTP %d): %s\n", apiErr.Code, apiErr.Status, apiErr.Message)
}

func report(name string, job *imagefleet.JobResult) {
	r := job.Crop
	fmt.Printf("%s: %s %s -> %s, %dx%d %s, %d bytes, crop x=%d y=%d %dx%d, charged %d micros\n",
		name, job.ID, job.Status, job.Output, job.Width, job.Height, job.Format, job.Bytes,
		r.X, r.Y, r.Width, r.Height, job.Billing.ChargedMicros)
}

// gradient is a picture whose every region differs: red across, green down.
func gradient(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	return img
}

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
