module wpoolload

go 1.19
