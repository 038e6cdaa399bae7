"""The lecture's worked example (003): a 6×6 image and the vertical-edge kernel, with the slide's result."""
LECTURE_IMAGE = [[3, 0, 1, 2, 7, 4],
                 [1, 5, 8, 9, 3, 1],
                 [2, 7, 2, 5, 1, 3],
                 [0, 1, 3, 1, 7, 8],
                 [4, 2, 1, 6, 2, 8],
                 [2, 4, 5, 2, 3, 9]]
VERTICAL_EDGE = [[1, 0, -1]] * 3
LECTURE_RESULT = [[-5, -4, 0, 8],
                  [-10, -2, 2, 3],
                  [0, -2, -4, -7],
                  [-3, -2, -3, -16]]
