module ipcgo

go 1.19
