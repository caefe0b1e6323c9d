module wpoolio

go 1.19
