module github.com/txloop/txloop/clients/go

go 1.19
