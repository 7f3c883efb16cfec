module github.com/txloop/txloop/demo/go-bank

go 1.19

require github.com/txloop/txloop/clients/go v0.0.0

replace github.com/txloop/txloop/clients/go => ../../clients/go
