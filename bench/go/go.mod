module wpoolbench

go 1.19
