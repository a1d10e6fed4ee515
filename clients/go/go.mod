module github.com/imagefleet/imagefleet-go

go 1.19
