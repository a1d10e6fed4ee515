package imagefleet

import (
	"context"
	"fmt"
)

// The gravity modes of a crop.
const (
	GravityCenter     = "center"      // the window centred on the image
	GravityFocalPoint = "focal_point" // centred on FocalX, FocalY (shifted back inside)
	GravityEntropy    = "entropy"     // the window with the highest brightness variance
	GravityAttention  = "attention"   // the most salient window (edges, saturation, skin tones)
	GravityFace       = "face"        // around the faces found (attention when there are none)
)

// CropJob is the crop operation's spec: Rect, or Gravity with Width and Height. Operation
// may be left empty (Crop sends "crop"); so may Output (the fleet then writes
// jobs/<job id>/output.<ext>).
type CropJob struct {
	Operation string    `json:"operation"`
	Input     string    `json:"input"`
	Output    string    `json:"output"`
	Rect      *CropRect `json:"rect,omitempty"`
	Gravity   string    `json:"gravity,omitempty"`
	FocalX    *float64  `json:"focal_x,omitempty"`
	FocalY    *float64  `json:"focal_y,omitempty"`
	Width     *uint32   `json:"width,omitempty"`
	Height    *uint32   `json:"height,omitempty"`
	Format    string    `json:"format,omitempty"`
	Quality   *uint8    `json:"quality,omitempty"`
	Inline    bool      `json:"inline,omitempty"`
}

// CropRect is a pixel rectangle of the image as it is meant to be seen (EXIF orientation
// applied): a crop's Rect, and the rectangle a finished crop used (JobResult.Crop).
type CropRect struct {
	X      uint32 `json:"x"`
	Y      uint32 `json:"y"`
	Width  uint32 `json:"width"`
	Height uint32 `json:"height"`
}

// Ptr returns a pointer to v, for the optional fields: Width: imagefleet.Ptr[uint32](400).
func Ptr[T any](v T) *T { return &v }

// Crop submits the crop (holding the reply until it ends, as `?wait` does), follows it
// until it ends or ctx is done, and returns the finished job: Output, Width, Height and
// Crop, the rectangle used. A crop that failed (CROP_OUT_OF_BOUNDS, IMAGE_PARSE_FAILED,
// ...) or a refused spec (VALIDATION_ERROR, NOT_FOUND, PAYMENT_REQUIRED, ...) is an
// *APIError.
func (c *Client) Crop(ctx context.Context, job *CropJob) (*JobResult, error) {
	if job == nil {
		return nil, fmt.Errorf("imagefleet: Crop needs a job")
	}
	if job.Operation != "" && job.Operation != "crop" {
		return nil, fmt.Errorf("imagefleet: Crop got a %q job", job.Operation)
	}
	return c.Run(ctx, job)
}

// cropWireJob is a CropJob as sent: "crop" when Operation is empty, and no "output" when
// Output is (the fleet picks the key; an empty key is not one).
type cropWireJob struct {
	CropJob
	Operation string `json:"operation"`
	Output    string `json:"output,omitempty"`
}

func cropWire(job *CropJob) cropWireJob {
	w := cropWireJob{CropJob: *job, Operation: job.Operation, Output: job.Output}
	if w.Operation == "" {
		w.Operation = "crop"
	}
	return w
}
