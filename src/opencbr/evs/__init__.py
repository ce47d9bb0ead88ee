"""EVS: disks and servers — sparse images, changed-block tracking, encryption, attach."""
