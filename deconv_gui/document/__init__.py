"""The app's document model, Qt-free: opened images, their results, selection, UI choices and edits."""
